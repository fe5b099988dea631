import type { Logger } from '../logger.js';
import type { Metrics } from '../metrics.js';
import { parseDigest, type Digest } from '../oci/digest.js';
import { manifestReferences } from '../oci/manifest.js';
import { OciError } from '../oci/errors.js';
import { isReservedTagName } from '../oci/referrers.js';
import type { BlobStore } from '../storage/blob-store.js';
import type { MetadataIndex, RepositoryRecord } from '../storage/metadata-index.js';
import type { Credentials } from '../config/credentials.js';
import { UpstreamError } from '../upstream/upstream-error.js';
import type { Route, UpstreamRouter } from '../upstream/upstream-router.js';
import type { AccessPolicy, AccessProbe } from './access-policy.js';
import type { BlobFills, JoinedFill } from './blob-fill.js';
import type { ManifestFill } from './manifest-fill.js';
import { createManifestLookup, notFound, offlineMiss, type ManifestLookupOptions } from './manifest-lookup.js';
import { createReferrersLookup } from './referrers.js';
import type { BlobResult, BlobSender, Registry } from './registry.js';
import { SingleFlight } from './single-flight.js';
import { isUpstreamOutage, staleWarning } from './tag-freshness.js';

export interface PullThroughOptions extends ManifestLookupOptions {
  /** Blobs of a freshly fetched image manifest filled ahead of the client, at a time; 0 = none. */
  readonly prefetchBlobs: number;
}

export interface PullThroughDeps {
  readonly router: UpstreamRouter;
  readonly store: BlobStore;
  readonly index: MetadataIndex;
  readonly manifests: ManifestFill;
  readonly fills: BlobFills;
  readonly access: AccessPolicy;
  readonly metrics: Metrics;
  readonly logger: Logger;
  readonly now: () => number;
}

/** A refusal that depends on who asked and through which repository: another requester may still be served. */
function isAccessRefusal(err: unknown): boolean {
  return err instanceof UpstreamError && (err.kind === 'auth' || err.isNotFound);
}

/** A manifest listing more blobs than this is not prefetched: no image needs it, an attacker would. */
export const PREFETCH_MAX_BLOBS = 128;
/** Blobs waiting for prefetch across every manifest; a manifest that would pass it is not prefetched. */
export const PREFETCH_MAX_QUEUED = 1024;

function linkOf(route: Route): RepositoryRecord {
  return { upstream: route.upstream.host, repository: route.repository };
}

/**
 * The pull-through policy over the Registry port: answer from the cache where the content is
 * there, readable by the requester and (for tags) fresh; otherwise fill from the routed
 * upstream, one fetch per key; serve cached tags when the upstream is down. Digests are
 * immutable and never revalidated.
 */
export function createPullThroughRegistry(options: PullThroughOptions, deps: PullThroughDeps): Registry {
  const { metrics, index, access } = deps;
  const manifests = createManifestLookup(options, deps);
  const probes = new SingleFlight<unknown>();
  const referrers = createReferrersLookup(options, { ...deps, manifests: deps.manifests, byTag: manifests.byTag });
  // Digests queued for prefetch but not yet started, over every manifest.
  let prefetchQueued = 0;

  /**
   * Sends a cached blob. A file that vanished under its row (evicted or collected between the
   * lookup and the open, removed by hand) drops the row, as start-up reconciliation would, and
   * the request is served by filling the blob again: the open failed, so nothing was sent yet.
   */
  const sendCached =
    (digest: Digest, size: number, refill: () => Promise<BlobSender>): BlobSender =>
    async (dest, sendOptions) => {
      try {
        return await deps.store.send(digest, dest, { ...sendOptions, size });
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
        index.deleteContent([digest.value]);
        deps.logger.warn({ digest: digest.value }, 'cached blob file is gone; its index row was dropped and the blob is fetched again');
        return (await refill())(dest, sendOptions);
      }
    };

  /** For a requester already entitled to `digest`: a fresh fill of it, when its cached file vanished. */
  const refiller =
    (route: Route, link: RepositoryRecord, digest: Digest, requester: Credentials | undefined) =>
    async (): Promise<BlobSender> => {
      if (options.isOffline(link.upstream)) throw offlineMiss(metrics, 'BLOB_UNKNOWN', `blob ${digest.value}`, link.upstream);
      try {
        return (await deps.fills.join(route.upstream, link, digest, access.upstreamCredentials(link, requester))).send;
      } catch (err) {
        throw notFound(err, 'BLOB_UNKNOWN', `blob ${digest.value} of ${route.repository}`);
      }
    };

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
   */
  function prefetch(route: Route, bytes: Buffer, mediaType: string, requester: Credentials | undefined): void {
    if (options.prefetchBlobs <= 0) return;
    const descriptors = manifestReferences(bytes, mediaType).blobs;
    if (descriptors.length > PREFETCH_MAX_BLOBS || prefetchQueued + descriptors.length > PREFETCH_MAX_QUEUED) {
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
    prefetchQueued += queue.length;
    const next = (): Digest | undefined => {
      const digest = queue.shift();
      if (digest) prefetchQueued -= 1;
      return digest;
    };
    const worker = async (): Promise<void> => {
      for (let digest = next(); digest; digest = next()) {
        if ((index.getContent(digest.value) && index.isHeldBy(link.upstream, digest.value)) || deps.fills.runningFor(link.upstream, digest)) continue;
        if (deps.fills.size >= deps.fills.limit / 2) {
          // Busy: the clients' own requests fill what they need; drop the rest of this queue.
          metrics.prefetches.inc({ result: 'skipped' }, queue.length + 1);
          prefetchQueued -= queue.length;
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
      }
    };
    for (let i = 0; i < Math.min(options.prefetchBlobs, queue.length); i++) void worker();
  }

  /**
   * Fills `digest` from the routed upstream for this requester. Joining a fill already running is
   * this requester's own decision: it must be entitled on its own first (the fill may have been
   * started with other credentials, or through a repository that does not hold the blob), and a
   * joined fill that fails for its starter's authorization is followed by a fill of its own.
   */
  async function fill(route: Route, link: RepositoryRecord, digest: Digest, requester: Credentials | undefined, credentials: Credentials | undefined, probe: AccessProbe): Promise<BlobResult> {
    const startedFor = deps.fills.runningFor(link.upstream, digest);
    if (startedFor) {
      const isSameRepository = startedFor.repository === link.repository;
      await access.authorizeContent(link, digest.value, requester, probe, false, { isLinked: isSameRepository });
      const landed = index.getContent(digest.value);
      if (landed && index.isHeldBy(link.upstream, digest.value)) {
        metrics.cacheLookups.inc({ kind: 'blob', result: 'hit' });
        return { digest: digest.value, size: landed.size, source: 'cache', result: 'hit', upstream: link.upstream, send: sendCached(digest, landed.size, refiller(route, link, digest, requester)) };
      }
    }
    // Decided in the same tick as the join below: whether this request starts the shared fill.
    const isJoining = deps.fills.runningFor(link.upstream, digest) !== undefined;
    let joined: JoinedFill;
    try {
      joined = await deps.fills.join(route.upstream, link, digest, credentials);
    } catch (err) {
      if (!isJoining || !isAccessRefusal(err)) throw err;
      joined = await deps.fills.join(route.upstream, link, digest, credentials, { lane: `${credentials?.id ?? 'anonymous'}\0${link.repository}` });
    }
    if (joined.isStarter) {
      access.recordSuccess(link, credentials);
      // An anonymous download that committed is a proof as new as its link: it covers the blob even once stale.
      // (A fill may end after shutdown closed the index: then there is nothing to record.)
      if (credentials === undefined) joined.done.then(() => index.isLinked(link, digest.value) && access.recordSuccess(link, undefined)).catch(() => undefined);
    }
    const lookup = joined.isStarter ? 'miss' : 'joined';
    metrics.cacheLookups.inc({ kind: 'blob', result: lookup });
    return { digest: digest.value, size: joined.size, source: 'upstream', result: lookup, upstream: link.upstream, send: joined.send };
  }

  const tagLists = new Map<string, { at: number; tags: string[] }>();
  const tagListFlights = new SingleFlight<string[]>();

  /** {@link readUpstreamTags}, shared by concurrent requests and kept for {@link TAG_LIST_TTL_MS}. */
  async function allUpstreamTags(route: Route, requestOptions: { signal?: AbortSignal | undefined; credentials: Credentials | undefined }): Promise<string[]> {
    const key = `${route.upstream.host}/${route.repository}|${requestOptions.credentials?.id ?? ''}`;
    const kept = tagLists.get(key);
    if (kept && deps.now() - kept.at < TAG_LIST_TTL_MS) return kept.tags;
    return tagListFlights.run(key, async () => {
      // Not the first caller's signal: a client that goes away must not fail the others' shared read.
      const tags = await readUpstreamTags(route, { credentials: requestOptions.credentials });
      tagLists.delete(key);
      if (tagLists.size >= MAX_TAG_LISTS) tagLists.delete(tagLists.keys().next().value ?? '');
      tagLists.set(key, { at: deps.now(), tags });
      return tags;
    }).promise;
  }

  /** The upstream's whole tag list, every page followed (bounded), sorted and without duplicates. */
  async function readUpstreamTags(route: Route, requestOptions: { signal?: AbortSignal | undefined; credentials: Credentials | undefined }): Promise<string[]> {
    const tags = new Set<string>();
    let next: string | undefined;
    for (let pages = 0; ; pages++) {
      if (pages >= MAX_UPSTREAM_TAG_PAGES || tags.size >= MAX_UPSTREAM_TAGS) {
        deps.logger.warn({ upstream: route.upstream.host, repository: route.repository, pages, tags: tags.size }, 'tag list cut: the upstream has more pages than pullthrough follows');
        break;
      }
      const page = await route.upstream.listTagsPage(route.repository, { ...requestOptions, next });
      for (const tag of page.items) if (tags.size < MAX_UPSTREAM_TAGS) tags.add(tag);
      // A link back to a page already read would loop: the page count bounds that too.
      if (!page.next || page.next === next) break;
      next = page.next;
    }
    return [...tags].sort();
  }

  return {
    async getManifest(request, reference, { accept, credentials }) {
      const route = deps.router.route(request);
      const result = reference.kind === 'tag' ? await manifests.byTag(route, reference.tag, accept, credentials) : await manifests.byDigest(route, reference.digest, accept, credentials);
      if (result.result === 'miss' && result.bytes) prefetch(route, result.bytes, result.mediaType, credentials);
      return result;
    },

    async getBlob(request, digest, { method, credentials: requester }) {
      const route = deps.router.route(request);
      const link = linkOf(route);
      const isOffline = options.isOffline(link.upstream);
      // Concurrent access checks of one blob with the same credentials share one HEAD.
      const probe: AccessProbe = (credentials) =>
        probes.run(`${link.upstream}/${link.repository}@${digest.value}|${credentials?.id ?? ''}`, () => route.upstream.headBlob(link.repository, digest.value, { credentials })).promise;
      const record = index.getContent(digest.value);
      if (record && index.isHeldBy(link.upstream, digest.value)) {
        await access.authorizeContent(link, digest.value, requester, probe, isOffline);
        metrics.cacheLookups.inc({ kind: 'blob', result: 'hit' });
        index.recordAccess(digest.value);
        return { digest: digest.value, size: record.size, source: 'cache', result: 'hit', upstream: link.upstream, send: method === 'GET' ? sendCached(digest, record.size, refiller(route, link, digest, requester)) : undefined };
      }
      // Not cached, or cached from another upstream only: this upstream has to deliver the bytes itself.
      if (isOffline) throw offlineMiss(metrics, 'BLOB_UNKNOWN', `blob ${digest.value}`, link.upstream);
      const credentials = access.upstreamCredentials(link, requester);
      try {
        if (method === 'HEAD') {
          metrics.cacheLookups.inc({ kind: 'blob', result: 'miss' });
          const { size } = await route.upstream.headBlob(link.repository, digest.value, { credentials });
          access.recordSuccess(link, credentials);
          return { digest: digest.value, size, source: 'upstream', result: 'miss', upstream: link.upstream, send: undefined };
        }
        return await fill(route, link, digest, requester, credentials, probe);
      } catch (err) {
        throw notFound(err, 'BLOB_UNKNOWN', `blob ${digest.value} of ${route.repository}`);
      }
    },

    async getReferrers(request, subject, { artifactType, credentials }) {
      return referrers.get(deps.router.route(request), subject, { artifactType, requester: credentials });
    },

    async listTags(request, { n, last, signal, credentials: requester }) {
      const route = deps.router.route(request);
      const link = linkOf(route);
      // Rows under reserved names (referrers answers) are no tags: a real tag cannot hold ':'. Without
      // the upstream, a tag is listed only where the proofs at hand cover what it points at.
      const readable = (tag: string) => !isReservedTagName(tag) && access.isReadableWithoutUpstream(link, requester, index.getTag(link, tag)?.digest);
      const cachedTags = () => paginate(index.listTags(link).filter(readable), { n, last });
      if (options.isOffline(link.upstream)) {
        if (!access.isReadableWithoutUpstream(link, requester)) throw new OciError('UNAUTHORIZED', `credentials are needed for ${link.upstream}/${link.repository}`);
        return { ...cachedTags(), staleWarning: `111 pullthrough "Upstream ${link.upstream} is offline: the tags this cache holds"` };
      }
      try {
        const all = await allUpstreamTags(route, { signal, credentials: access.upstreamCredentials(link, requester) });
        return paginate(all, { n, last });
      } catch (err) {
        if (err instanceof UpstreamError && err.isNotFound) {
          throw new OciError('NAME_UNKNOWN', `repository ${route.repository} is not known to upstream ${err.upstream}`);
        }
        if (!isUpstreamOutage(err) || !access.isReadableWithoutUpstream(link, requester)) throw err;
        // The upstream is down: the tags we have cached are the best answer we can give.
        const cached = cachedTags();
        if (cached.items.length === 0 && last === undefined) throw err;
        return { ...cached, staleWarning: staleWarning(err) };
      }
    },

    async listRepositories(page, credentials) {
      // Only what this requester could read without asking: private repository names stay private too.
      const readable = index.listRepositories().filter((r) => access.isReadableWithoutUpstream(r, credentials));
      return paginate(readable.map((r) => deps.router.publicName(r.upstream, r.repository)).sort(), page);
    },
  };
}

/**
 * Bounds on following an upstream's tags/list pages: pullthrough pages over the whole list
 * itself (the upstream's own page size and order are its business, and its `Link` is useless
 * to our clients). Past either bound the list is cut there, and the cut is logged.
 */
export const MAX_UPSTREAM_TAG_PAGES = 100;
export const MAX_UPSTREAM_TAGS = 100_000;
/**
 * A client paging through a long list asks for every page within seconds; each page would
 * otherwise re-read the upstream's whole list (100 upstream requests a page for 10,000 tags
 * on Docker Hub). The list is kept this long, for this many repositories, per credential identity.
 */
const TAG_LIST_TTL_MS = 30_000;
const MAX_TAG_LISTS = 64;

/** distribution-spec "Listing tags": lexical order, `last` exclusive, at most `n`. */
export function paginate(sorted: readonly string[], { n, last }: { n?: number | undefined; last?: string | undefined }) {
  const after = last === undefined ? sorted : sorted.filter((item) => item > last);
  const items = n === undefined ? after : after.slice(0, n);
  return { items, hasMore: items.length < after.length };
}
