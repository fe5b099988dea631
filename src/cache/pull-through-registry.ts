import type { Logger } from '../logger.js';
import type { Metrics } from '../metrics.js';
import { OciError } from '../oci/errors.js';
import { accepts, MANIFEST_MEDIA_TYPES } from '../oci/media-types.js';
import type { BlobStore } from '../storage/blob-store.js';
import type { CachedManifest } from '../storage/manifest-cache.js';
import type { MetadataIndex, RepositoryRecord } from '../storage/metadata-index.js';
import type { Upstream } from '../upstream/upstream-client.js';
import { UpstreamError } from '../upstream/upstream-error.js';
import type { Route, UpstreamRouter } from '../upstream/upstream-router.js';
import type { BlobFills } from './blob-fill.js';
import type { ManifestFill } from './manifest-fill.js';
import type { LookupResult, ManifestResult, Registry } from './registry.js';
import { NotFoundCache } from './not-found-cache.js';
import { SingleFlight } from './single-flight.js';
import { isTagFresh, isUpstreamOutage, staleWarning } from './tag-freshness.js';

export interface PullThroughOptions {
  /** How long a tag is served from the cache before revalidation, per upstream and tag. */
  readonly tagTtlMs: (upstreamHost: string, tag: string) => number;
  /** How long an upstream 404 for a tag is remembered, per upstream. */
  readonly notFoundTtlMs: (upstreamHost: string) => number;
  /** An offline upstream is never contacted: the cache answers alone (imagePullPolicy: Never). */
  readonly isOffline: (upstreamHost: string) => boolean;
}

export interface PullThroughDeps {
  readonly router: UpstreamRouter;
  readonly store: BlobStore;
  readonly index: MetadataIndex;
  readonly manifests: ManifestFill;
  readonly fills: BlobFills;
  readonly metrics: Metrics;
  readonly logger: Logger;
  readonly now: () => number;
}

function linkOf(route: Route): RepositoryRecord {
  return { upstream: route.upstream.host, repository: route.repository };
}

/** Asks for everything we understand plus whatever else the client named, so one fill serves all clients. */
function fillAccept(clientAccept: readonly string[]): string[] {
  return [...new Set([...MANIFEST_MEDIA_TYPES, ...clientAccept.filter((t) => t !== '*/*')])];
}

function notFound(err: unknown, code: 'MANIFEST_UNKNOWN' | 'BLOB_UNKNOWN', what: string): unknown {
  if (err instanceof UpstreamError && err.isNotFound) {
    return new OciError(code, `${what} is not known to upstream ${err.upstream}`, { cause: err });
  }
  return err;
}

/**
 * The pull-through policy over the Registry port: answer from the cache where the content is
 * there and (for tags) fresh; otherwise fill from the routed upstream, one fetch per key;
 * serve cached tags when the upstream is down. Digests are immutable and never revalidated.
 */
export function createPullThroughRegistry(options: PullThroughOptions, deps: PullThroughDeps): Registry {
  const flights = new SingleFlight<CachedManifest>();
  const revalidations = new SingleFlight<string | undefined>();
  const notFoundTags = new NotFoundCache(deps.now);
  const { metrics, index } = deps;

  function offlineMiss(code: 'MANIFEST_UNKNOWN' | 'BLOB_UNKNOWN', what: string, host: string): OciError {
    metrics.cacheLookups.inc({ kind: code === 'BLOB_UNKNOWN' ? 'blob' : 'manifest', result: 'offline_miss' });
    return new OciError(code, `${what} is not in the cache, and upstream ${host} is offline`);
  }

  /** Counts the lookup and shapes the answer; `kind` is 'tag' for manifests asked for by tag. */
  function answer(kind: 'tag' | 'manifest', manifest: CachedManifest, lookup: LookupResult, warning?: string): ManifestResult {
    metrics.cacheLookups.inc({ kind, result: lookup });
    index.recordAccess(manifest.digest);
    const source = lookup === 'miss' || lookup === 'joined' ? 'upstream' : 'cache';
    return { digest: manifest.digest, mediaType: manifest.mediaType, size: manifest.bytes.length, bytes: manifest.bytes, source, result: lookup, staleWarning: warning };
  }

  async function fill(upstream: Upstream, link: RepositoryRecord, reference: string, accept: readonly string[], expected?: Parameters<ManifestFill['fetch']>[4]) {
    const key = `${link.upstream}/${link.repository}:${reference}|${accept.join(',')}`;
    const flight = flights.run(key, () => deps.manifests.fetch(upstream, link, reference, accept, expected));
    return { manifest: await flight.promise, lookup: (flight.joined ? 'joined' : 'miss') as LookupResult };
  }

  /** HEADs the tag upstream; resolves to the digest it points at now (undefined if the upstream did not say). */
  function revalidate(upstream: Upstream, link: RepositoryRecord, tag: string): Promise<string | undefined> {
    const key = `${link.upstream}/${link.repository}:${tag}`;
    return revalidations.run(key, async () => (await upstream.headManifest(link.repository, tag, { accept: MANIFEST_MEDIA_TYPES })).digest).promise;
  }

  async function manifestByTag(route: Route, tag: string, accept: readonly string[]): Promise<ManifestResult> {
    const link = linkOf(route);
    const isOffline = options.isOffline(link.upstream);
    const tagKey = `${link.upstream}/${link.repository}:${tag}`;
    index.recordPull(link, tag);
    const cached = index.getTag(link, tag);
    const local = cached && accepts(accept, cached.mediaType) ? await deps.manifests.local(cached.digest) : undefined;
    if (cached && local) {
      const now = deps.now();
      if (isOffline || isTagFresh(cached.checkedAt, now, options.tagTtlMs(link.upstream, tag))) return answer('tag', local, 'hit');
      try {
        const current = await revalidate(route.upstream, link, tag);
        if (current === cached.digest) {
          index.touchTag(link, tag, now);
          return answer('tag', local, 'revalidated');
        }
      } catch (err) {
        if (isUpstreamOutage(err)) {
          deps.logger.warn({ upstream: link.upstream, repository: link.repository, tag, err: err.message }, 'serving cached tag: upstream could not revalidate it');
          return answer('tag', local, 'stale', staleWarning(err));
        }
        if (err instanceof UpstreamError && err.isNotFound) {
          index.deleteTag(link, tag);
          notFoundTags.add(tagKey, options.notFoundTtlMs(link.upstream));
        }
        throw notFound(err, 'MANIFEST_UNKNOWN', `tag ${tag} of ${link.repository}`);
      }
    }
    if (isOffline) throw offlineMiss('MANIFEST_UNKNOWN', `tag ${tag} of ${link.repository}`, link.upstream);
    if (notFoundTags.has(tagKey)) {
      metrics.cacheLookups.inc({ kind: 'tag', result: 'not_found' });
      throw new OciError('MANIFEST_UNKNOWN', `tag ${tag} of ${link.repository} is not known to upstream ${link.upstream} (asked moments ago)`);
    }
    let fetched: Awaited<ReturnType<typeof fill>>;
    try {
      fetched = await fill(route.upstream, link, tag, fillAccept(accept));
      if (!accepts(accept, fetched.manifest.mediaType)) {
        // The client cannot take what the tag points at for everyone else: ask on its terms, but
        // keep the tag mapping that serves the other clients.
        const own = await fill(route.upstream, link, tag, accept);
        return answer('tag', own.manifest, own.lookup);
      }
    } catch (err) {
      if (err instanceof UpstreamError && err.isNotFound) notFoundTags.add(tagKey, options.notFoundTtlMs(link.upstream));
      throw notFound(err, 'MANIFEST_UNKNOWN', `tag ${tag} of ${link.repository}`);
    }
    index.putTag(link, tag, { digest: fetched.manifest.digest, mediaType: fetched.manifest.mediaType, checkedAt: deps.now() });
    return answer('tag', fetched.manifest, fetched.lookup);
  }

  return {
    async getManifest(request, reference, { accept }) {
      const route = deps.router.route(request);
      if (reference.kind === 'tag') return manifestByTag(route, reference.tag, accept);
      const { digest } = reference;
      const local = await deps.manifests.local(digest.value);
      if (local) return answer('manifest', local, 'hit');
      if (options.isOffline(route.upstream.host)) throw offlineMiss('MANIFEST_UNKNOWN', `manifest ${digest.value}`, route.upstream.host);
      try {
        const fetched = await fill(route.upstream, linkOf(route), digest.value, fillAccept(accept), digest);
        return answer('manifest', fetched.manifest, fetched.lookup);
      } catch (err) {
        throw notFound(err, 'MANIFEST_UNKNOWN', `manifest ${digest.value} of ${route.repository}`);
      }
    },

    async getBlob(request, digest, { method }) {
      const route = deps.router.route(request);
      const record = index.getContent(digest.value);
      if (record) {
        metrics.cacheLookups.inc({ kind: 'blob', result: 'hit' });
        index.recordAccess(digest.value);
        return { digest: digest.value, size: record.size, source: 'cache', result: 'hit', open: method === 'GET' ? (range) => deps.store.createReadStream(digest, range) : undefined };
      }
      if (options.isOffline(route.upstream.host)) throw offlineMiss('BLOB_UNKNOWN', `blob ${digest.value}`, route.upstream.host);
      try {
        if (method === 'HEAD') {
          metrics.cacheLookups.inc({ kind: 'blob', result: 'miss' });
          const { size } = await route.upstream.headBlob(route.repository, digest.value);
          return { digest: digest.value, size, source: 'upstream', result: 'miss', open: undefined };
        }
        const fill = await deps.fills.join(route.upstream, linkOf(route), digest);
        const lookup = fill.isStarter ? 'miss' : 'joined';
        metrics.cacheLookups.inc({ kind: 'blob', result: lookup });
        return { digest: digest.value, size: fill.size, source: 'upstream', result: lookup, open: fill.createReader };
      } catch (err) {
        throw notFound(err, 'BLOB_UNKNOWN', `blob ${digest.value} of ${route.repository}`);
      }
    },

    async listTags(request, { n, last, signal }) {
      const route = deps.router.route(request);
      if (options.isOffline(route.upstream.host)) return paginate(index.listTags(linkOf(route)), { n, last });
      try {
        const page = await route.upstream.listTags(route.repository, { n, last, signal });
        return { items: page.tags, hasMore: page.hasMore };
      } catch (err) {
        if (err instanceof UpstreamError && err.isNotFound) {
          throw new OciError('NAME_UNKNOWN', `repository ${route.repository} is not known to upstream ${err.upstream}`);
        }
        if (!isUpstreamOutage(err)) throw err;
        // The upstream is down: the tags we have cached are the best answer we can give.
        const cached = paginate(index.listTags(linkOf(route)), { n, last });
        if (cached.items.length === 0 && last === undefined) throw err;
        return { ...cached, staleWarning: staleWarning(err) };
      }
    },

    async listRepositories(page) {
      const names = index.listRepositories().map((r) => deps.router.publicName(r.upstream, r.repository));
      return paginate(names.sort(), page);
    },
  };
}

/** distribution-spec "Listing tags": lexical order, `last` exclusive, at most `n`. */
function paginate(sorted: readonly string[], { n, last }: { n?: number | undefined; last?: string | undefined }) {
  const after = last === undefined ? sorted : sorted.filter((item) => item > last);
  const items = n === undefined ? after : after.slice(0, n);
  return { items, hasMore: items.length < after.length };
}
