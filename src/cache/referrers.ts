import { LRUCache } from 'lru-cache';
import type { Credentials } from '../config/credentials.js';
import type { Logger } from '../logger.js';
import type { Metrics } from '../metrics.js';
import { digestOf, parseDigest, type Digest } from '../oci/digest.js';
import { OciError } from '../oci/errors.js';
import { MEDIA_TYPES } from '../oci/media-types.js';
import { fallbackTag, indexManifests, referrerDescriptors, referrersIndex, referrersTagName, type ReferrerDescriptor } from '../oci/referrers.js';
import type { ContentStore } from '../storage/content-store.js';
import type { ContentIndex, TagIndex, RepositoryRecord } from '../storage/metadata-index.js';
import type { Route } from '../upstream/upstream-router.js';
import type { AccessPolicy } from './access-policy.js';
import type { LookupResult, ManifestResult, ReferrersResult } from './registry.js';
import { SingleFlight } from './single-flight.js';
import { isTagFresh, isUpstreamOutage, revalidationFailed } from './tag-freshness.js';
import { answerReferrers } from './referrers-answer.js';
import type { LocalRegistry } from './local-registry.js';

/**
 * Bounds on following an upstream's referrers pages: containerd's own 64 pages and 4096
 * descriptors, 4 MiB a page, and no page asked for once 4 MiB were read (so a hostile upstream
 * costs at most 8 MiB of memory per answer, not 64 pages of 4 MiB).
 */
export const MAX_REFERRERS_PAGES = 64;
export const MAX_REFERRERS = 4096;
const MAX_PAGE_BYTES = 4 * 2 ** 20;
const MAX_ANSWER_BYTES = 4 * 2 ** 20;
/** Upstreams remembered as having no referrers API (as many as the catch-all keeps hosts). */
const MAX_NO_API_HOSTS = 1_000;
/** How long an upstream that answered the endpoint 404/405 is taken to have no referrers API. */
export const NO_API_TTL_MS = 15 * 60_000;

interface StoredAnswer {
  readonly digest: string;
  readonly bytes: Buffer;
  readonly staleBecause?: string | undefined;
}

/**
 * Referrers of a subject (distribution-spec "Listing Referrers"), cached like a tag: the
 * upstream's answer with every page followed, or, from an upstream without the API, the index
 * under the fallback tag `<alg>-<hex>`, or none. Kept unfiltered under {@link referrersTagName},
 * revalidated after the upstream's tagTtl, served stale while it is down and from the cache
 * offline; `artifactType` filtering is always done here.
 */
export function createReferrersLookup(
  options: {
    readonly tagTtlMs: (upstreamHost: string, tag: string) => number;
  },
  deps: {
    readonly index: ContentIndex & TagIndex;
    readonly store: ContentStore;
    readonly local: LocalRegistry;
    readonly access: AccessPolicy;
    readonly metrics: Metrics;
    readonly logger: Logger;
    readonly now: () => number;
    /** The manifest lookup by tag, which caches the fallback tag as any other tag. */
    readonly byTag: (route: Route, tag: string, accept: readonly string[], requester: Credentials | undefined) => Promise<ManifestResult>;
  },
) {
  const { index, access, metrics } = deps;
  const flights = new SingleFlight<StoredAnswer>();
  /** Upstream host → until when it is taken to have no referrers API. In memory, one entry per upstream. */
  const noApiUntil = new LRUCache<string, number>({ max: MAX_NO_API_HOSTS });

  async function store(link: RepositoryRecord, descriptors: readonly ReferrerDescriptor[]): Promise<StoredAnswer> {
    const bytes = referrersIndex(descriptors);
    const digest = digestOf(bytes);
    // The referrers are its children: eviction and pins treat them as part of the answer.
    await deps.store.put(parseDigest(digest), bytes, { kind: 'manifest', mediaType: MEDIA_TYPES.ociIndex, link, references: descriptors.map((d) => d.digest) });
    return { digest, bytes };
  }

  /** Every page of the upstream's answer, bounded; undefined when the upstream has no referrers API. */
  async function fromApi(route: Route, subject: Digest, credentials: Credentials | undefined): Promise<ReferrerDescriptor[] | undefined> {
    const host = route.upstream.host;
    if ((noApiUntil.get(host) ?? 0) > deps.now()) return undefined;
    const byDigest = new Map<string, ReferrerDescriptor>();
    let next: string | undefined;
    let readBytes = 0;
    for (let pages = 0; pages < MAX_REFERRERS_PAGES && byDigest.size < MAX_REFERRERS && readBytes < MAX_ANSWER_BYTES; pages++) {
      const page = await route.upstream.getReferrersPage(route.repository, subject.value, { credentials, next, maxBytes: MAX_PAGE_BYTES });
      if (page.kind === 'unsupported') {
        if (pages > 0) break;
        // "repository unknown" says nothing about the API: the fallback tag answers this one request.
        if (!page.isRepositoryUnknown) noApiUntil.set(host, deps.now() + NO_API_TTL_MS);
        return undefined;
      }
      readBytes += page.sizeBytes;
      for (const descriptor of referrerDescriptors(page.manifests)) {
        if (byDigest.size >= MAX_REFERRERS) break;
        byDigest.set(descriptor.digest, descriptor);
      }
      if (!page.next || page.next === next) break;
      next = page.next;
    }
    noApiUntil.delete(host);
    return [...byDigest.values()];
  }

  /** Asks the upstream: the API, else the fallback tag. Stores the answer under the reserved tag unless it is stale. */
  async function refresh(route: Route, link: RepositoryRecord, subject: Digest, requester: Credentials | undefined): Promise<StoredAnswer> {
    const credentials = access.upstreamCredentials(link, requester);
    const key = `${link.upstream}/${link.repository}@${subject.value}|${credentials?.id ?? ''}`;
    return flights.run(key, async () => {
      const descriptors = await fromApi(route, subject, credentials);
      let answer: StoredAnswer;
      if (descriptors) {
        access.recordSuccess(link, credentials);
        answer = await store(link, descriptors);
      } else {
        try {
          const tagged = await deps.byTag(route, fallbackTag(subject), [MEDIA_TYPES.ociIndex, MEDIA_TYPES.dockerManifestList], requester);
          const manifests = indexManifests(tagged.bytes);
          // A fallback tag that is no index lists nothing we could answer with.
          answer = manifests ? { digest: tagged.digest, bytes: tagged.bytes, staleBecause: tagged.staleBecause } : await store(link, []);
        } catch (err) {
          if (!(err instanceof OciError && err.code === 'MANIFEST_UNKNOWN')) throw err;
          answer = await store(link, []);
        }
      }
      if (!answer.staleBecause) index.putTag(link, referrersTagName(subject), { digest: answer.digest, mediaType: MEDIA_TYPES.ociIndex, checkedAt: deps.now() });
      return answer;
    }).promise;
  }

  const answer = (link: RepositoryRecord, stored: StoredAnswer, lookup: LookupResult, artifactType: string | undefined, staleBecause?: string) =>
    answerReferrers(deps, link, stored, lookup, artifactType, staleBecause ?? stored.staleBecause);

  /** Referrers through the upstream: the cached answer while fresh, else asked again (the cached one served while the upstream is down). */
  async function get(route: Route, subject: Digest, request: { artifactType?: string | undefined; requester: Credentials | undefined }): Promise<ReferrersResult> {
    const link = { upstream: route.upstream.host, repository: route.repository };
    const { artifactType, requester } = request;
    // The same rules as the subject's repository: a tags page is the cheapest proof of read access.
    const probe = (credentials: Credentials | undefined) => route.upstream.listTagsPage(link.repository, { credentials, next: `/v2/${link.repository}/tags/list?n=1` });
    const known = await deps.local.cachedTag(link, referrersTagName(subject));
    if (!known) return answer(link, await refresh(route, link, subject, requester), 'miss', artifactType);
    await access.authorizeRepository(link, requester, probe);
    if (isTagFresh(known.record.checkedAt, deps.now(), options.tagTtlMs(link.upstream, fallbackTag(subject)))) return answer(link, known.manifest, 'hit', artifactType);
    try {
      const fresh = await refresh(route, link, subject, requester);
      return answer(link, fresh, fresh.digest === known.manifest.digest ? 'revalidated' : 'miss', artifactType);
    } catch (err) {
      if (!isUpstreamOutage(err)) throw err;
      deps.logger.warn({ upstream: link.upstream, repository: link.repository, subject: subject.value, err: err.message }, 'serving cached referrers: upstream could not revalidate them');
      return answer(link, known.manifest, 'stale', artifactType, revalidationFailed(err));
    }
  }

  return { get };
}
