import type { Credentials } from '../config/credentials.js';
import type { Metrics } from '../metrics.js';
import type { Logger } from '../logger.js';
import type { Digest } from '../oci/digest.js';
import { OciError } from '../oci/errors.js';
import { accepts, MANIFEST_MEDIA_TYPES } from '../oci/media-types.js';
import type { CachedManifest } from '../storage/manifest-cache.js';
import type { TagIndex, RepositoryRecord } from '../storage/metadata-index.js';
import type { Upstream } from '../upstream/upstream-client.js';
import { UpstreamError } from '../upstream/upstream-error.js';
import type { Route } from '../upstream/upstream-router.js';
import type { AccessPolicy } from './access-policy.js';
import type { ManifestFill } from './manifest-fill.js';
import { NotFoundCache } from './not-found-cache.js';
import type { LookupResult, ManifestResult } from './registry.js';
import { SingleFlight } from './single-flight.js';
import { isTagFresh, isUpstreamOutage, revalidationFailed } from './tag-freshness.js';
import { linkOf, type LocalRegistry } from './local-registry.js';
import { notFound } from './client-errors.js';
import type { PeerSources } from './peer-source.js';

export interface ProxyManifestOptions {
  readonly tagTtlMs: (upstreamHost: string, tag: string) => number;
  readonly notFoundTtlMs: (upstreamHost: string) => number;
}

/** Asks for everything we understand plus whatever else the client named, so one fill serves all clients. */
function fillAccept(clientAccept: readonly string[]): string[] {
  return [...new Set([...MANIFEST_MEDIA_TYPES, ...clientAccept.filter((t) => t !== '*/*')])];
}

/**
 * Manifests by tag and by digest through the upstream: from the local registry when it holds
 * them, the requester may read them and (for tags) they are fresh; else from the upstream, one
 * request per key and credential identity.
 */
export function createProxyManifests(
  options: ProxyManifestOptions,
  deps: { local: LocalRegistry; index: TagIndex; manifests: ManifestFill; access: AccessPolicy; metrics: Metrics; logger: Logger; now: () => number; peers?: PeerSources | undefined },
) {
  const { index, metrics, access, local } = deps;
  const flights = new SingleFlight<CachedManifest>();
  const heads = new SingleFlight<string | undefined>();
  const notFoundTags = new NotFoundCache(deps.now);

  /**
   * GETs from upstream with `credentials`; concurrent identical requests with the same credentials
   * share one. `isFromPeers`: the source asks cluster members first, and the upstream's yes was
   * the access check made before.
   */
  async function fill(upstream: Upstream, link: RepositoryRecord, reference: string, accept: readonly string[], credentials: Credentials | undefined, expected?: Digest, isFromPeers = false) {
    const key = `${link.upstream}/${link.repository}:${reference}|${accept.join(',')}|${credentials?.id ?? ''}`;
    const flight = flights.run(key, async () => {
      const manifest = await deps.manifests.fetch(upstream, link, reference, { accept, credentials, expected });
      if (!isFromPeers) access.recordSuccess(link, credentials);
      return manifest;
    });
    return { manifest: await flight.promise, lookup: (flight.joined ? 'joined' : 'miss') as LookupResult };
  }

  /** A HEAD of a manifest, the digest it answers with; concurrent ones with the same credentials share one request. */
  function probe(upstream: Upstream, repository: string, reference: string) {
    return (credentials: Credentials | undefined) =>
      heads.run(`${upstream.host}/${repository}:${reference}|${credentials?.id ?? ''}`, async () => (await upstream.headManifest(repository, reference, { accept: MANIFEST_MEDIA_TYPES, credentials })).digest).promise;
  }

  async function byTag(route: Route, tag: string, accept: readonly string[], requester: Credentials | undefined): Promise<ManifestResult> {
    const link = linkOf(route);
    const tagKey = `${link.upstream}/${link.repository}:${tag}`;
    const credentials = access.upstreamCredentials(link, requester);
    // A 404 is remembered for what decided it: the credentials sent (some upstreams answer 404 to
    // wrong ones), and only for requests that asked for every standard type (see fillAccept).
    const notFoundKey = `${tagKey}|${credentials?.id ?? ''}`;
    index.recordPull(link, tag);
    const held = await local.cachedTag(link, tag, accept);
    if (held) {
      const { record: cached, manifest } = held;
      const now = deps.now();
      const isFresh = isTagFresh(cached.checkedAt, now, options.tagTtlMs(link.upstream, tag));
      // A stale tag's revalidating HEAD, sent with the requester's own credentials, is its access
      // proof as well: one request upstream, not two.
      let revalidation: Promise<string | undefined> | undefined;
      const headTag = (sent: Credentials | undefined) => {
        const answer = probe(route.upstream, link.repository, tag)(sent);
        if (!isFresh && sent?.id === credentials?.id) revalidation = answer;
        return answer;
      };
      await access.authorizeRepository(link, requester, headTag, { digest: cached.digest });
      if (isFresh) return local.answer(link, 'tag', manifest, 'hit');
      try {
        const current = await (revalidation ?? headTag(credentials));
        if (current === cached.digest) {
          index.touchTag(link, tag, now);
          return local.answer(link, 'tag', manifest, 'revalidated');
        }
      } catch (err) {
        if (isUpstreamOutage(err)) {
          deps.logger.warn({ upstream: link.upstream, repository: link.repository, tag, err: err.message }, 'serving cached tag: upstream could not revalidate it');
          return local.answer(link, 'tag', manifest, 'stale', revalidationFailed(err));
        }
        if (err instanceof UpstreamError && err.isNotFound) {
          index.deleteTag(link, tag);
          notFoundTags.add(notFoundKey, options.notFoundTtlMs(link.upstream));
        }
        throw notFound(err, 'MANIFEST_UNKNOWN', `tag ${tag} of ${link.repository}`);
      }
    }
    if (notFoundTags.has(notFoundKey)) {
      metrics.cacheLookups.inc({ kind: 'tag', result: 'not_found' });
      throw new OciError('MANIFEST_UNKNOWN', `tag ${tag} of ${link.repository} is not known to upstream ${link.upstream} (asked moments ago)`);
    }
    let fetched: Awaited<ReturnType<typeof fill>>;
    try {
      fetched = await fill(route.upstream, link, tag, fillAccept(accept), credentials);
    } catch (err) {
      if (err instanceof UpstreamError && err.isNotFound) notFoundTags.add(notFoundKey, options.notFoundTtlMs(link.upstream));
      throw notFound(err, 'MANIFEST_UNKNOWN', `tag ${tag} of ${link.repository}`);
    }
    index.putTag(link, tag, { digest: fetched.manifest.digest, mediaType: fetched.manifest.mediaType, checkedAt: deps.now() });
    if (!accepts(accept, fetched.manifest.mediaType)) {
      // The client cannot take what the tag points at for everyone else: ask on its terms (its 404
      // is its own, not remembered), keeping the tag mapping that serves the other clients.
      try {
        const own = await fill(route.upstream, link, tag, accept, credentials);
        return local.answer(link, 'tag', own.manifest, own.lookup);
      } catch (err) {
        throw notFound(err, 'MANIFEST_UNKNOWN', `tag ${tag} of ${link.repository} in a media type the client accepts`);
      }
    }
    return local.answer(link, 'tag', fetched.manifest, fetched.lookup);
  }

  async function byDigest(route: Route, digest: Digest, accept: readonly string[], requester: Credentials | undefined): Promise<ManifestResult> {
    const link = linkOf(route);
    // Only bytes this upstream delivered itself are served through it (another upstream may have lied).
    const held = await local.heldManifest(link, digest);
    if (held) {
      await access.authorizeContent(link, digest.value, requester, probe(route.upstream, link.repository, digest.value));
      return local.answer(link, 'manifest', held, 'hit');
    }
    try {
      // Owned by another member: its bytes, once the upstream said this requester may have them.
      const fromPeers = deps.peers?.manifestSource(route.upstream, digest);
      if (fromPeers) await access.authorizeContent(link, digest.value, requester, probe(route.upstream, link.repository, digest.value), { isLinked: false, outageIsUnavailable: true });
      const fetched = await fill(fromPeers ?? route.upstream, link, digest.value, fillAccept(accept), access.upstreamCredentials(link, requester), digest, fromPeers !== undefined);
      return local.answer(link, 'manifest', fetched.manifest, fetched.lookup);
    } catch (err) {
      throw notFound(err, 'MANIFEST_UNKNOWN', `manifest ${digest.value} of ${route.repository}`);
    }
  }

  return { byTag, byDigest };
}
