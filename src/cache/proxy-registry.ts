import type { Credentials } from '../config/credentials.js';
import type { Logger } from '../logger.js';
import type { Metrics } from '../metrics.js';
import type { Digest } from '../oci/digest.js';
import type { ContentStore } from '../storage/content-store.js';
import type { MetadataIndex, RepositoryRecord } from '../storage/metadata-index.js';
import { UpstreamError } from '../upstream/upstream-error.js';
import type { Route } from '../upstream/upstream-router.js';
import type { AccessPolicy, AccessProbe } from './access-policy.js';
import type { BlobFills, JoinedFill } from './blob-fill.js';
import { notFound } from './client-errors.js';
import { linkOf, type LocalRegistry } from './local-registry.js';
import type { ManifestFill } from './manifest-fill.js';
import type { PeerSources } from './peer-source.js';
import { createPrefetcher } from './prefetch.js';
import { createProxyManifests, type ProxyManifestOptions } from './proxy-manifests.js';
import { createProxyTags } from './proxy-tags.js';
import { createReferrersLookup } from './referrers.js';
import type { BlobContent, BlobResult, BlobSender, RoutedRegistry } from './registry.js';
import { SingleFlight } from './single-flight.js';

export interface ProxyOptions extends ProxyManifestOptions {
  /** Blobs of a freshly fetched image manifest filled ahead of the client, at a time; 0 = none. */
  readonly prefetchBlobs: number;
}

export interface ProxyDeps {
  readonly store: ContentStore;
  readonly index: MetadataIndex;
  readonly manifests: ManifestFill;
  readonly fills: BlobFills;
  readonly access: AccessPolicy;
  readonly metrics: Metrics;
  readonly logger: Logger;
  readonly now: () => number;
  /** The other members of the cluster as sources of blob bytes; absent on a single node. */
  readonly peers?: PeerSources | undefined;
}

/** A refusal that depends on who asked and through which repository: another requester may still be served. */
function isAccessRefusal(err: unknown): boolean {
  return err instanceof UpstreamError && (err.kind === 'auth' || err.isNotFound);
}

/**
 * The pull-through cache as a decorator of the local registry (distribution's
 * registry/proxy): every read asks `local` first and answers from it where the content is
 * there, the requester may read it (a fresh proof, or the upstream's yes to a HEAD) and, for
 * tags, it is fresh; otherwise it fills from the routed upstream, one fetch per key, and the
 * content lands in `local` on its way to the client. Cached tags are served while the upstream
 * is down; digests are immutable and never revalidated. The blob miss path, step by step, is
 * in src/README.md.
 */
export function createProxyRegistry(local: LocalRegistry, options: ProxyOptions, deps: ProxyDeps): RoutedRegistry {
  const { metrics, access, fills } = deps;
  const manifests = createProxyManifests(options, { ...deps, local });
  const referrers = createReferrersLookup(options, { ...deps, local, byTag: manifests.byTag });
  const listTags = createProxyTags({ ...deps, local });
  const prefetch = createPrefetcher(options, deps);
  const probes = new SingleFlight<unknown>();

  /** Concurrent access checks of one blob with the same credentials share one HEAD. */
  const blobProbe =
    (route: Route, digest: Digest): AccessProbe =>
    (credentials) =>
      probes.run(`${route.upstream.host}/${route.repository}@${digest.value}|${credentials?.id ?? ''}`, () => route.upstream.headBlob(route.repository, digest.value, { credentials })).promise;

  /** For a requester already entitled to `digest`: a fresh fill of it, when its cached file vanished. */
  const refiller = (route: Route, link: RepositoryRecord, digest: Digest, requester: Credentials | undefined) => async (): Promise<BlobSender> => {
    try {
      return (await fills.join(route.upstream, link, digest, access.upstreamCredentials(link, requester))).send;
    } catch (err) {
      throw notFound(err, 'BLOB_UNKNOWN', `blob ${digest.value} of ${route.repository}`);
    }
  };

  /** The cached blob, when this upstream delivered it and the requester may read it (which may ask the upstream). */
  async function heldFor(route: Route, link: RepositoryRecord, digest: Digest, requester: Credentials | undefined): Promise<(BlobResult & { size: number }) | undefined> {
    const held = local.heldBlob(link, digest);
    if (!held) return undefined;
    await access.authorizeContent(link, digest.value, requester, blobProbe(route, digest));
    metrics.cacheLookups.inc({ kind: 'blob', result: 'hit' });
    deps.index.recordAccess(digest.value);
    return { digest: digest.value, size: held.size, source: 'cache', result: 'hit', upstream: link.upstream };
  }

  /**
   * Fills `digest` from the routed upstream for this requester. Joining a fill already running is
   * this requester's own decision: it must be entitled on its own first (the fill may have been
   * started with other credentials, or through a repository that does not hold the blob), and a
   * joined fill that fails for its starter's authorization is followed by a fill of its own.
   */
  async function fill(route: Route, link: RepositoryRecord, digest: Digest, requester: Credentials | undefined): Promise<BlobContent> {
    const credentials = access.upstreamCredentials(link, requester);
    // Owned by another member: the bytes come from it, so the upstream is asked, with the
    // requester's own credentials, only whether this requester may have them.
    const fromPeers = deps.peers?.blobSource(route.upstream, digest);
    if (fromPeers) await access.authorizeContent(link, digest.value, requester, blobProbe(route, digest), { isLinked: false, outageIsUnavailable: true });
    const source = fromPeers ?? route.upstream;
    const startedFor = fills.runningFor(link.upstream, digest);
    if (startedFor) await access.authorizeContent(link, digest.value, requester, blobProbe(route, digest), { isLinked: startedFor.repository === link.repository });
    // After an access check it may have landed (a fill that ended while the upstream was asked):
    // the requester passed that check, and a new fill would fetch it again.
    const landed = local.heldBlob(link, digest);
    if (landed) {
      metrics.cacheLookups.inc({ kind: 'blob', result: 'hit' });
      return { digest: digest.value, size: landed.size, source: 'cache', result: 'hit', upstream: link.upstream, send: local.sendBlob(digest, landed.size, refiller(route, link, digest, requester)) };
    }
    // Decided in the same tick as the join below: whether this request starts the shared fill.
    const isJoining = fills.runningFor(link.upstream, digest) !== undefined;
    let joined: JoinedFill;
    try {
      joined = await fills.join(source, link, digest, credentials);
    } catch (err) {
      if (!isJoining || !isAccessRefusal(err)) throw err;
      joined = await fills.join(source, link, digest, credentials, { lane: `${credentials?.id ?? 'anonymous'}\0${link.repository}` });
    }
    // What the upstream said yes to: the download itself, or (bytes from a peer) the access check.
    const proven = fromPeers ? requester : credentials;
    if (joined.isStarter) {
      if (!fromPeers) access.recordSuccess(link, credentials);
      // An anonymous download that committed is a proof as new as its link: it covers the blob even once stale.
      // (A fill may end after shutdown closed the index: then there is nothing to record.)
      if (proven === undefined) joined.done.then(() => deps.index.isLinked(link, digest.value) && access.recordSuccess(link, undefined)).catch(() => undefined);
    }
    const lookup = joined.isStarter ? 'miss' : 'joined';
    metrics.cacheLookups.inc({ kind: 'blob', result: lookup });
    return { digest: digest.value, size: joined.size, source: fromPeers ? 'peer' : 'upstream', result: lookup, upstream: link.upstream, send: joined.send };
  }

  return {
    async getManifest(route, reference, { accept, credentials }) {
      const result = reference.kind === 'tag' ? await manifests.byTag(route, reference.tag, accept, credentials) : await manifests.byDigest(route, reference.digest, accept, credentials);
      if (result.result === 'miss') prefetch(route, result.bytes, result.mediaType, credentials);
      return result;
    },

    async statBlob(route, digest, { credentials: requester }) {
      const link = linkOf(route);
      try {
        const held = await heldFor(route, link, digest, requester);
        if (held) return held;
        // A HEAD asks the upstream, it does not fill: a client checking for a blob may never want it.
        const credentials = access.upstreamCredentials(link, requester);
        metrics.cacheLookups.inc({ kind: 'blob', result: 'miss' });
        const { size } = await route.upstream.headBlob(link.repository, digest.value, { credentials });
        access.recordSuccess(link, credentials);
        return { digest: digest.value, size, source: 'upstream', result: 'miss', upstream: link.upstream };
      } catch (err) {
        throw notFound(err, 'BLOB_UNKNOWN', `blob ${digest.value} of ${route.repository}`);
      }
    },

    async getBlob(route, digest, { credentials: requester }) {
      const link = linkOf(route);
      try {
        const held = await heldFor(route, link, digest, requester);
        if (held) return { ...held, send: local.sendBlob(digest, held.size, refiller(route, link, digest, requester)) };
        // Not cached, or cached from another upstream only: this upstream has to deliver the bytes itself.
        return await fill(route, link, digest, requester);
      } catch (err) {
        throw notFound(err, 'BLOB_UNKNOWN', `blob ${digest.value} of ${route.repository}`);
      }
    },

    getReferrers: (route, subject, { artifactType, credentials }) => referrers.get(route, subject, { artifactType, requester: credentials }),
    listTags,
    // Without asking any upstream, as offline: the names only of what this requester may read.
    listRepositories: (page, credentials, publicName) => local.listRepositories(page, credentials, publicName),
  };
}
