import type { Request, Response } from 'express';
import type { Registry } from '../../cache/registry.js';
import { OciError } from '../../oci/errors.js';
import { parseAccept } from '../../oci/media-types.js';
import { looksLikeDigest } from '../../oci/digest.js';
import { parseManifestReference, type ManifestReference } from '../../oci/reference.js';
import { labels, repositoryRequest, requesterCredentials, staleWarning } from '../request-context.js';

/**
 * A reference that is no valid tag names no manifest: 404 MANIFEST_UNKNOWN, as distribution
 * answers and the conformance suite's `.INVALID_MANIFEST_NAME` expects (the spec has no
 * TAG_INVALID). A malformed digest stays 400 DIGEST_INVALID.
 */
function manifestReference(raw: string): ManifestReference {
  try {
    return parseManifestReference(raw);
  } catch (err) {
    if (looksLikeDigest(raw)) throw err;
    throw new OciError('MANIFEST_UNKNOWN', `${JSON.stringify(raw.slice(0, 200))} is not a valid tag, so no manifest has it`);
  }
}

/** `GET`/`HEAD /v2/<name>/manifests/<reference>` (distribution-spec "Pulling manifests"). */
export function createManifestHandler(registry: Registry) {
  return async (req: Request, res: Response): Promise<void> => {
    labels(res).kind = 'manifest';
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      throw new OciError('UNSUPPORTED', `${req.method} of manifests is not supported: pullthrough is a read-only mirror`);
    }
    const params = req.params as Record<string, string>;
    const reference = manifestReference(params['1'] ?? '');
    const manifest = await registry.getManifest(repositoryRequest(req, params['0'] ?? ''), reference, {
      accept: parseAccept(req.headersDistinct['accept']),
      credentials: requesterCredentials(res),
    });
    Object.assign(labels(res), { source: manifest.source, result: manifest.result, upstream: manifest.upstream });
    // Every client needs these three exactly: without Content-Type containerd and docker
    // misread or refuse the manifest (see shared/CLIENTS.md).
    res.setHeader('content-type', manifest.mediaType);
    res.setHeader('docker-content-digest', manifest.digest);
    res.setHeader('etag', `"${manifest.digest}"`);
    res.setHeader('content-length', String(manifest.size));
    if (manifest.staleBecause) res.setHeader('warning', staleWarning(manifest.staleBecause));
    const ifNoneMatch = req.headers['if-none-match'];
    if (ifNoneMatch !== undefined && ifNoneMatch.split(',').some((tag) => tag.trim().replace(/^W\//, '') === `"${manifest.digest}"`)) {
      res.removeHeader('content-length');
      res.status(304).end();
      return;
    }
    res.status(200);
    if (req.method === 'HEAD') {
      res.end();
      return;
    }
    Object.assign(labels(res), { expectedBytes: manifest.size, sentBytes: manifest.size });
    res.end(manifest.bytes);
  };
}
