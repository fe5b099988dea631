import { forEachConcurrently } from '../concurrency.js';
import type { Credentials } from '../config/credentials.js';
import type { Metrics } from '../metrics.js';
import { parseDigest, type Digest } from '../oci/digest.js';
import { manifestReferences } from '../oci/manifest.js';
import type { ContentIndex } from '../storage/metadata-index.js';
import type { Route } from '../upstream/upstream-router.js';
import type { AccessPolicy } from './access-policy.js';
import type { BlobFills } from './blob-fill.js';
import { linkOf } from './local-registry.js';
import type { PeerSources } from './peer-source.js';

/** A manifest listing more blobs than this is not prefetched: no image needs it, an attacker would. */
export const PREFETCH_MAX_BLOBS = 128;
/** Blobs waiting for prefetch across every manifest; a manifest that would pass it is not prefetched. */
export const PREFETCH_MAX_QUEUED = 1024;

/**
 * A client that got an image manifest from upstream will ask for its blobs next, usually one
 * (skopeo) to three (containerd) at a time: fill them ahead, a few at a time, with the same
 * credentials, so the next layer is on disk, or landing, when it is asked for. Clients then
 * join these fills; nothing is served that they would not have been served anyway.
 *
 * Bounded, since one anonymous GET of a hostile manifest must not turn into thousands of
 * upstream GETs: a manifest of more than {@link PREFETCH_MAX_BLOBS} blobs is not prefetched, at
 * most {@link PREFETCH_MAX_QUEUED} blobs wait over all manifests, and prefetch starts no fill
 * while half of `cache.maxConcurrentFills` are running, which keeps the rest for clients.
 *
 * In a cluster, a member prefetches only the blobs it owns: the others' are fetched by their
 * owners (whose clients pull the same image), and a client's request here gets them from the
 * owner after its own access check, so the upstream still sees one fetch per blob.
 */
export function createPrefetcher(
  options: { readonly prefetchBlobs: number },
  deps: { index: ContentIndex; fills: BlobFills; access: AccessPolicy; metrics: Metrics; peers?: PeerSources | undefined },
): (route: Route, bytes: Buffer, mediaType: string, requester: Credentials | undefined) => void {
  const { index, access, metrics } = deps;
  // Digests queued for prefetch but not yet started, over every manifest.
  let queued = 0;

  return (route, bytes, mediaType, requester) => {
    if (options.prefetchBlobs <= 0) return;
    const descriptors = manifestReferences(bytes, mediaType).blobs;
    if (descriptors.length > PREFETCH_MAX_BLOBS || queued + descriptors.length > PREFETCH_MAX_QUEUED) {
      metrics.prefetches.inc({ result: 'skipped' }, descriptors.length);
      return;
    }
    const link = linkOf(route);
    const credentials = access.upstreamCredentials(link, requester);
    const queue: Digest[] = [];
    for (const descriptor of descriptors) {
      try {
        queue.push(parseDigest(descriptor.digest));
      } catch {
        // Not a digest we could fetch by; a client asking for it gets the error then.
      }
    }
    queued += queue.length;
    const next = (): Digest | undefined => {
      const digest = queue.shift();
      if (digest) queued -= 1;
      return digest;
    };
    void forEachConcurrently(next, Math.min(options.prefetchBlobs, queue.length), async (digest) => {
      if ((index.getContent(digest.value) && index.isHeldBy(link.upstream, digest.value)) || deps.fills.runningFor(link.upstream, digest)) return;
      if (deps.peers && !deps.peers.members.rank(digest.value)[0]?.isSelf) {
        metrics.prefetches.inc({ result: 'skipped' });
        return;
      }
      if (deps.fills.size >= deps.fills.limit / 2) {
        // Busy: the clients' own requests fill what they need; drop the rest of this queue.
        metrics.prefetches.inc({ result: 'skipped' }, queue.length + 1);
        queued -= queue.length;
        queue.length = 0;
        return;
      }
      try {
        const fill = await deps.fills.join(route.upstream, link, digest, credentials);
        await fill.done;
        const isCommitted = index.isLinked(link, digest.value);
        // As for a client's anonymous download: the upstream served it to no credentials, just now.
        if (isCommitted && credentials === undefined) access.recordSuccess(link, undefined);
        metrics.prefetches.inc({ result: isCommitted ? 'committed' : 'failed' });
      } catch {
        // The upstream refused or is gone: the client's own request will say so.
        metrics.prefetches.inc({ result: 'failed' });
      }
    });
  };
}
