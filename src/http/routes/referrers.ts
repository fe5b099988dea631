import type { Request, Response } from 'express';
import type { Registry } from '../../cache/registry.js';
import { parseDigest } from '../../oci/digest.js';
import { OciError } from '../../oci/errors.js';
import { MEDIA_TYPES } from '../../oci/media-types.js';
import { labels, repositoryRequest, requesterCredentials, staleWarning } from '../request-context.js';

/**
 * `GET`/`HEAD /v2/<name>/referrers/<digest>[?artifactType=…]` (distribution-spec "Listing
 * Referrers"): 200 with an image index for every well-formed digest, never 404; a malformed
 * digest is 400. The whole answer goes in one index: no `Link`, nothing for a client to follow.
 */
export function createReferrersHandler(registry: Registry) {
  return async (req: Request, res: Response): Promise<void> => {
    labels(res).kind = 'referrers';
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      throw new OciError('UNSUPPORTED', `${req.method} of referrers is not supported: pullthrough is a read-only mirror`);
    }
    const params = req.params as Record<string, string>;
    const subject = parseDigest(params['1'] ?? '');
    const artifactType = req.query['artifactType'];
    const answer = await registry.getReferrers(repositoryRequest(req, params['0'] ?? ''), subject, {
      artifactType: typeof artifactType === 'string' && artifactType !== '' ? artifactType : undefined,
      credentials: requesterCredentials(res),
    });
    Object.assign(labels(res), { source: answer.source, result: answer.result, upstream: answer.upstream });
    res.setHeader('content-type', MEDIA_TYPES.ociIndex);
    res.setHeader('content-length', String(answer.bytes.length));
    if (answer.isFiltered) res.setHeader('oci-filters-applied', 'artifactType');
    if (answer.staleBecause) res.setHeader('warning', staleWarning(answer.staleBecause));
    res.status(200);
    if (req.method === 'HEAD') return void res.end();
    Object.assign(labels(res), { expectedBytes: answer.bytes.length, sentBytes: answer.bytes.length });
    res.end(answer.bytes);
  };
}
