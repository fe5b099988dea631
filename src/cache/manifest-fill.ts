import type { Credentials } from '../config/credentials.js';
import type { Logger } from '../logger.js';
import type { Metrics } from '../metrics.js';
import { parseDigest, type Digest } from '../oci/digest.js';
import { OciError } from '../oci/errors.js';
import { checkManifestDigest, manifestProblem, manifestReferences } from '../oci/manifest.js';
import type { ContentStore } from '../storage/content-store.js';
import type { CachedManifest, ManifestCache } from '../storage/manifest-cache.js';
import type { MetadataIndex, RepositoryRecord } from '../storage/metadata-index.js';
import type { Upstream } from '../upstream/upstream-client.js';
import { UpstreamError } from '../upstream/upstream-error.js';
import { SingleFlight } from './single-flight.js';

/** Reads and fills manifests: memory, then disk, then the upstream (verified before stored). */
export interface ManifestFill {
  /** The cached manifest with this digest, from memory or disk, or undefined. */
  local(digest: string): Promise<CachedManifest | undefined>;
  /**
   * GETs a manifest from the upstream, verifies it (against `expected` when fetched by digest,
   * else against the upstream's Docker-Content-Digest when sent), stores and indexes it.
   * @throws UpstreamError, of kind 'invalid' for a manifest that fails verification.
   */
  fetch(upstream: Upstream, link: RepositoryRecord, reference: string, request: { accept: readonly string[]; credentials: Credentials | undefined; expected?: Digest | undefined }): Promise<CachedManifest>;
}

/** Seconds a client refused for lack of manifest read memory waits before asking again. */
const READ_BUDGET_RETRY_AFTER_SECONDS = 2;

/**
 * `readBudgetBytes` bounds the manifest bytes held by every upstream read at once: each chunk
 * takes from it as it arrives (small manifests take little) and a read that would pass it fails
 * with 503, so hundreds of concurrent oversized bodies cost at most that much memory.
 */
export function createManifestFill(
  options: { maxManifestBytes: number; readBudgetBytes: number },
  deps: { content: ContentStore; index: MetadataIndex; memory: ManifestCache; metrics: Metrics; logger: Logger },
): ManifestFill {
  let reading = 0;
  return {
    async local(digest) {
      const hot = deps.memory.get(digest);
      if (hot) return hot;
      const record = deps.index.getContent(digest);
      if (!record || record.kind !== 'manifest' || !record.mediaType) return undefined;
      let bytes: Buffer;
      try {
        bytes = await deps.content.readAll(parseDigest(digest));
      } catch (err) {
        // The index says yes but the file is gone (removed by hand): treat it as a miss.
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
        throw err;
      }
      const manifest = { digest, mediaType: record.mediaType, bytes };
      deps.memory.set(manifest);
      return manifest;
    },

    async fetch(upstream, link, reference, { accept, credentials, expected }) {
      let held = 0;
      const onChunk = (bytes: number) => {
        if (reading + bytes > options.readBudgetBytes) {
          throw new OciError('UNAVAILABLE', `too many manifest bytes are being read from upstreams at once (cache.manifestReadBytes); retry shortly`, {
            headers: { 'retry-after': String(READ_BUDGET_RETRY_AFTER_SECONDS) },
          });
        }
        reading += bytes;
        held += bytes;
      };
      let response;
      try {
        response = await upstream.getManifest(link.repository, reference, { accept, credentials, maxBytes: options.maxManifestBytes, onChunk });
      } finally {
        // The body is one buffer now, bounded by the memory cache from here on.
        reading -= held;
      }
      const { digest, mismatch: claimed } = checkManifestDigest(response.bytes, expected, response.digest);
      if (claimed !== undefined) {
        deps.metrics.digestMismatches.inc();
        deps.logger.warn({ upstream: upstream.host, repository: link.repository, reference, expected: claimed, actual: digest }, 'upstream sent a manifest that does not match its digest; discarded');
        throw new UpstreamError('invalid', upstream.host, `upstream ${upstream.host} sent manifest ${reference} whose content does not match digest ${claimed}`);
      }
      // A 200 does not make a body a manifest (a login page, a redirect target's JSON): nothing else is stored or served.
      const problem = manifestProblem(response.bytes, response.mediaType);
      if (problem !== undefined) {
        deps.logger.warn({ upstream: upstream.host, repository: link.repository, reference, problem }, 'upstream sent something that is not a manifest; discarded');
        throw new UpstreamError('invalid', upstream.host, `upstream ${upstream.host} sent manifest ${reference} that is not a manifest: ${problem}`);
      }
      const references = manifestReferences(response.bytes, response.mediaType);
      const children = [...references.manifests, ...references.blobs].map((d) => d.digest);
      await deps.content.put(parseDigest(digest), response.bytes, { kind: 'manifest', mediaType: response.mediaType, link, references: children });
      const manifest = { digest, mediaType: response.mediaType, bytes: response.bytes };
      deps.memory.set(manifest);
      return manifest;
    },
  };
}

/**
 * Manifests by digest are the same bytes whoever asks: concurrent fetches of one digest from one
 * source with the same credentials share one upstream GET. In a cluster these are the owner's own
 * client and the members asking it for the digest it owns (otherwise two GETs per manifest). The
 * source is matched by identity: a member's peers-first source is never joined by a peer request,
 * which goes to the upstream itself, so no request is passed on from member to member.
 */
export function sharingDigestFetches(fill: ManifestFill): ManifestFill {
  const flights = new WeakMap<Upstream, SingleFlight<CachedManifest>>();
  return {
    local: (digest) => fill.local(digest),
    fetch(upstream, link, reference, request) {
      if (!request.expected) return fill.fetch(upstream, link, reference, request);
      let running = flights.get(upstream);
      if (!running) flights.set(upstream, (running = new SingleFlight()));
      const key = `${link.upstream}/${link.repository}@${request.expected.value}|${request.credentials?.id ?? ''}`;
      return running.run(key, () => fill.fetch(upstream, link, reference, request)).promise;
    },
  };
}
