import { Router, type NextFunction, type Request, type Response } from 'express';
import type { PeerService } from '../../cache/peer-service.js';
import type { Logger } from '../../logger.js';
import { parseDigest } from '../../oci/digest.js';
import { OciError } from '../../oci/errors.js';
import { checkRepositoryRequest } from '../../oci/reference.js';
import { labels } from '../request-context.js';
import { createBlobHandler } from './blobs.js';

/** The upstream and repository a peer request names, checked as a client's `ns=` and name are. */
function target(req: Request) {
  const { upstream, repository } = req.query;
  if (typeof upstream !== 'string' || typeof repository !== 'string') throw new OciError('NAME_INVALID', 'a peer request names its upstream and repository');
  const checked = checkRepositoryRequest({ name: repository, namespace: upstream });
  return { upstream: checked.namespace ?? upstream, repository: checked.name };
}

/**
 * `/_pullthrough/cluster/v1/{blobs,manifests}/<digest>?upstream=&repository=`: what the other
 * members of the cluster ask this one for (README "Cluster"). Answered only to requests signed
 * with the cluster secret; the rest get 401 and nothing of the content.
 */
export function createPeerRouter(peers: PeerService, logger: Logger, options: { sendIdleTimeoutMs: number }): Router {
  const router = Router();
  router.use((req: Request, res: Response, next: NextFunction) => {
    labels(res).kind = 'peer';
    if (!peers.isSigned(req.method, req.originalUrl, req.headers)) {
      throw new OciError('UNAUTHORIZED', 'cluster requests must be signed with the cluster secret');
    }
    next();
  });
  const blobs = createBlobHandler(
    async (req, _res, isHead) => {
      const { upstream, repository } = target(req);
      const digest = parseDigest((req.params as Record<string, string>)['digest'] ?? '');
      return isHead ? peers.statBlob(upstream, repository, digest) : peers.getBlob(upstream, repository, digest);
    },
    logger,
    options,
  );
  router.get('/blobs/:digest', async (req, res) => {
    await blobs(req, res);
    labels(res).kind = 'peer';
  });
  router.get('/manifests/:digest', async (req, res) => {
    const { upstream, repository } = target(req);
    const manifest = await peers.getManifest(upstream, repository, parseDigest(req.params.digest));
    Object.assign(labels(res), { source: manifest.source, result: manifest.result, upstream: manifest.upstream, expectedBytes: manifest.size, sentBytes: manifest.size });
    res.setHeader('content-type', manifest.mediaType);
    res.setHeader('docker-content-digest', manifest.digest);
    res.setHeader('content-length', String(manifest.size));
    res.status(200).end(req.method === 'HEAD' ? undefined : manifest.bytes);
  });
  return router;
}
