import type { Credentials } from '../config/credentials.js';
import type { Logger } from '../logger.js';
import type { Metrics } from '../metrics.js';
import type { Digest } from '../oci/digest.js';
import { OciError } from '../oci/errors.js';
import { accepts } from '../oci/media-types.js';
import { fallbackTag, isReservedTagName, referrersIndex, referrersTagName } from '../oci/referrers.js';
import type { ContentStore } from '../storage/content-store.js';
import type { CachedManifest } from '../storage/manifest-cache.js';
import type { ContentRecord, ContentIndex, TagIndex, RepositoryRecord, TagRecord } from '../storage/metadata-index.js';
import type { Route } from '../upstream/upstream-router.js';
import type { AccessPolicy } from './access-policy.js';
import type { ManifestFill } from './manifest-fill.js';
import { answerReferrers } from './referrers-answer.js';
import type { BlobSender, LookupResult, ManifestResult, RoutedRegistry } from './registry.js';

export function linkOf(route: Route): RepositoryRecord {
  return { upstream: route.upstream.host, repository: route.repository };
}

/** distribution-spec "Listing tags": lexical order, `last` exclusive, at most `n`. */
export function paginate(sorted: readonly string[], { n, last }: { n?: number | undefined; last?: string | undefined }) {
  const after = last === undefined ? sorted : sorted.filter((item) => item > last);
  const items = n === undefined ? after : after.slice(0, n);
  return { items, hasMore: items.length < after.length };
}

/** What this cache holds, read without the upstream: the lookups the proxy decorates, and offline mode's answers. */
export interface LocalRegistry extends RoutedRegistry {
  /** The blob's row when the upstream of `link` delivered it (one upstream never vouches for another's bytes). */
  heldBlob(link: RepositoryRecord, digest: Digest): ContentRecord | undefined;
  /**
   * Sends the cached blob. A file that vanished under its row (evicted or collected between the
   * lookup and the open, removed by hand) drops the row, as start-up reconciliation would, and
   * `refill` serves the request instead: the open failed, so nothing was sent yet.
   */
  sendBlob(digest: Digest, size: number, refill: () => Promise<BlobSender>): BlobSender;
  /** The manifest with this digest when the upstream of `link` delivered it. */
  heldManifest(link: RepositoryRecord, digest: Digest): Promise<CachedManifest | undefined>;
  /** The cached tag and the manifest it points at, when both are here and the client accepts its type. */
  cachedTag(link: RepositoryRecord, tag: string, accept?: readonly string[]): Promise<{ record: TagRecord; manifest: CachedManifest } | undefined>;
  /** Cached tags this requester may see without asking the upstream (reserved rows left out). */
  readableTags(link: RepositoryRecord, requester: Credentials | undefined): string[];
  /** Counts the lookup and notes the read; the answer for `manifest`. */
  answer(link: RepositoryRecord, kind: 'tag' | 'manifest', manifest: CachedManifest, lookup: LookupResult, staleBecause?: string): ManifestResult;
}

/** For a miss the cache cannot fill: the spec's "unknown", saying why. */
export function offlineMiss(metrics: Metrics, code: 'MANIFEST_UNKNOWN' | 'BLOB_UNKNOWN', what: string, host: string): OciError {
  metrics.cacheLookups.inc({ kind: code === 'BLOB_UNKNOWN' ? 'blob' : 'manifest', result: 'offline_miss' });
  return new OciError(code, `${what} is not in the cache, and upstream ${host} is offline`);
}

/**
 * The registry on disk alone. Its own reads answer as offline mode does: what is cached and
 * covered by a proof the upstream gave (of any age), else "unknown" or "unauthorized". The proxy
 * registry decorates its lookups with the upstream.
 */
export function createLocalRegistry(deps: { store: ContentStore; index: ContentIndex & TagIndex; manifests: Pick<ManifestFill, 'local'>; access: AccessPolicy; metrics: Metrics; logger: Logger }): LocalRegistry {
  const { index, access, metrics } = deps;

  const local: LocalRegistry = {
    heldBlob(link, digest) {
      const record = index.getContent(digest.value);
      return record && index.isHeldBy(link.upstream, digest.value) ? record : undefined;
    },

    sendBlob: (digest, size, refill) => async (dest, sendOptions) => {
      try {
        return await (await deps.store.open(digest, { range: sendOptions?.range, size })).send(dest, sendOptions);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
        index.deleteContent([digest.value]);
        deps.logger.warn({ digest: digest.value }, 'cached blob file is gone; its index row was dropped and the blob is fetched again');
        return (await refill())(dest, sendOptions);
      }
    },

    async heldManifest(link, digest) {
      return index.isHeldBy(link.upstream, digest.value) ? deps.manifests.local(digest.value) : undefined;
    },

    async cachedTag(link, tag, accept) {
      const record = index.getTag(link, tag);
      if (!record || (accept && !accepts(accept, record.mediaType))) return undefined;
      const manifest = await deps.manifests.local(record.digest);
      return manifest && { record, manifest };
    },

    readableTags(link, requester) {
      // Rows under reserved names (referrers answers) are no tags: a real tag cannot hold ':'. Without
      // the upstream, a tag is listed only where the proofs at hand cover what it points at.
      return index.listTags(link).filter((tag) => !isReservedTagName(tag) && access.isReadableWithoutUpstream(link, requester, index.getTag(link, tag)?.digest));
    },

    answer(link, kind, manifest, lookup, staleBecause) {
      metrics.cacheLookups.inc({ kind, result: lookup });
      index.recordAccess(manifest.digest);
      const source = lookup === 'miss' || lookup === 'joined' ? 'upstream' : 'cache';
      return { digest: manifest.digest, mediaType: manifest.mediaType, size: manifest.bytes.length, bytes: manifest.bytes, source, result: lookup, upstream: link.upstream, staleBecause };
    },

    async getManifest(route, reference, { accept, credentials }) {
      const link = linkOf(route);
      if (reference.kind === 'tag') {
        index.recordPull(link, reference.tag);
        const cached = await local.cachedTag(link, reference.tag, accept);
        if (!cached) throw offlineMiss(metrics, 'MANIFEST_UNKNOWN', `tag ${reference.tag} of ${link.repository}`, link.upstream);
        access.authorizeRepositoryLocally(link, credentials, { digest: cached.record.digest });
        return local.answer(link, 'tag', cached.manifest, 'hit');
      }
      const manifest = await local.heldManifest(link, reference.digest);
      if (!manifest) throw offlineMiss(metrics, 'MANIFEST_UNKNOWN', `manifest ${reference.digest.value}`, link.upstream);
      access.authorizeContentLocally(link, reference.digest.value, credentials);
      return local.answer(link, 'manifest', manifest, 'hit');
    },

    async statBlob(route, digest, { credentials }) {
      const link = linkOf(route);
      const record = local.heldBlob(link, digest);
      if (!record) throw offlineMiss(metrics, 'BLOB_UNKNOWN', `blob ${digest.value}`, link.upstream);
      access.authorizeContentLocally(link, digest.value, credentials);
      metrics.cacheLookups.inc({ kind: 'blob', result: 'hit' });
      index.recordAccess(digest.value);
      return { digest: digest.value, size: record.size, source: 'cache', result: 'hit', upstream: link.upstream };
    },

    async getBlob(route, digest, options) {
      const link = linkOf(route);
      const found = await local.statBlob(route, digest, options);
      const gone = () => Promise.reject(offlineMiss(metrics, 'BLOB_UNKNOWN', `blob ${digest.value}`, link.upstream));
      return { ...found, send: local.sendBlob(digest, found.size ?? 0, gone) };
    },

    async getReferrers(route, subject, { artifactType, credentials }) {
      const link = linkOf(route);
      // The answer fetched last, else a fallback tag fetched or imported earlier: answered as online.
      const cached = (await local.cachedTag(link, referrersTagName(subject))) ?? (await local.cachedTag(link, fallbackTag(subject)));
      if (cached) {
        access.authorizeRepositoryLocally(link, credentials);
        return answerReferrers(deps, link, cached.manifest, 'hit', artifactType);
      }
      // The spec allows no 404 here: "none that this cache knows of", said so.
      metrics.cacheLookups.inc({ kind: 'referrers', result: 'offline_miss' });
      return {
        bytes: referrersIndex([]),
        isFiltered: artifactType !== undefined,
        source: 'cache',
        result: 'stale',
        upstream: link.upstream,
        staleBecause: `Upstream ${link.upstream} is offline and no referrers of ${subject.value} are cached`,
      };
    },

    async listTags(route, { n, last, credentials }) {
      const link = linkOf(route);
      if (!access.isReadableWithoutUpstream(link, credentials)) throw new OciError('UNAUTHORIZED', `credentials are needed for ${link.upstream}/${link.repository}`);
      return { ...paginate(local.readableTags(link, credentials), { n, last }), staleBecause: `Upstream ${link.upstream} is offline: the tags this cache holds` };
    },

    async listRepositories(page, credentials, publicName) {
      // Only what this requester could read without asking: private repository names stay private too.
      const readable = index.listRepositories().filter((r) => access.isReadableWithoutUpstream(r, credentials));
      return paginate(readable.map(publicName).sort(), page);
    },
  };
  return local;
}
