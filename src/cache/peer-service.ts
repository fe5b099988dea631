import type { Digest } from '../oci/digest.js';
import { OciError } from '../oci/errors.js';
import { MANIFEST_MEDIA_TYPES } from '../oci/media-types.js';
import { isSignedPeerRequest, PEER_SIGNATURE_HEADER } from '../upstream/peer-signature.js';
import type { UpstreamRouter } from '../upstream/upstream-router.js';
import type { AccessPolicy } from './access-policy.js';
import type { BlobFills } from './blob-fill.js';
import { notFound, toClientError } from './client-errors.js';
import { linkOf, type LocalRegistry } from './local-registry.js';
import type { ManifestFill } from './manifest-fill.js';
import type { BlobContent, BlobResult, ManifestResult } from './registry.js';

/**
 * What one member serves the others (README "Cluster"): blob and manifest bytes by digest, from
 * its disk or from a fill of its own from the upstream, to requests signed with the cluster
 * secret only. No access decision is made here: the asking member made its own for its
 * requester against the upstream before it asked. Nothing is forwarded to a third member, and
 * a fill started here sends the upstream no credentials but configured ones where they reveal
 * nothing private (as for an anonymous client).
 */
export interface PeerService {
  /** Whether the request (its method, path with query and headers) is signed with the cluster secret. */
  isSigned(method: string, pathAndQuery: string, headers: Readonly<Record<string, string | string[] | undefined>>): boolean;
  statBlob(upstreamHost: string, repository: string, digest: Digest): Promise<BlobResult>;
  getBlob(upstreamHost: string, repository: string, digest: Digest): Promise<BlobContent>;
  getManifest(upstreamHost: string, repository: string, digest: Digest): Promise<ManifestResult>;
}

export function createPeerService(
  options: { secret: string; isOffline: (upstreamHost: string) => boolean },
  deps: { router: UpstreamRouter; local: LocalRegistry; fills: BlobFills; manifests: ManifestFill; access: AccessPolicy; now: () => number },
): PeerService {
  const { local, access } = deps;

  function routeOf(upstreamHost: string, repository: string) {
    // Only configured upstreams (and the catch-all's rules): a member names no address of its own.
    const route = deps.router.route({ name: repository, namespace: upstreamHost });
    if (route.upstream.host !== upstreamHost.toLowerCase()) throw new OciError('NAME_UNKNOWN', `no upstream ${upstreamHost} here`);
    return route;
  }

  async function mapped<T>(work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (err) {
      throw toClientError(err);
    }
  }

  return {
    isSigned(method, pathAndQuery, headers) {
      const signature = headers[PEER_SIGNATURE_HEADER];
      return isSignedPeerRequest(options.secret, typeof signature === 'string' ? signature : undefined, method, pathAndQuery, deps.now());
    },

    statBlob: (upstreamHost, repository, digest) =>
      mapped(async () => {
        const link = linkOf(routeOf(upstreamHost, repository));
        const held = local.heldBlob(link, digest);
        if (!held) throw new OciError('BLOB_UNKNOWN', `blob ${digest.value} is not cached here`);
        return { digest: digest.value, size: held.size, source: 'cache', result: 'hit', upstream: link.upstream };
      }),

    getBlob: (upstreamHost, repository, digest) =>
      mapped(async () => {
        const route = routeOf(upstreamHost, repository);
        const link = linkOf(route);
        const fill = async () => {
          if (options.isOffline(link.upstream)) throw new OciError('BLOB_UNKNOWN', `blob ${digest.value} is not cached here, and upstream ${link.upstream} is offline`);
          try {
            return await deps.fills.join(route.upstream, link, digest, access.upstreamCredentials(link, undefined));
          } catch (err) {
            throw notFound(err, 'BLOB_UNKNOWN', `blob ${digest.value} of ${repository}`);
          }
        };
        const held = local.heldBlob(link, digest);
        if (held) return { digest: digest.value, size: held.size, source: 'cache', result: 'hit', upstream: link.upstream, send: local.sendBlob(digest, held.size, async () => (await fill()).send) };
        const joined = await fill();
        return { digest: digest.value, size: joined.size, source: 'upstream', result: joined.isStarter ? 'miss' : 'joined', upstream: link.upstream, send: joined.send };
      }),

    getManifest: (upstreamHost, repository, digest) =>
      mapped(async () => {
        const route = routeOf(upstreamHost, repository);
        const link = linkOf(route);
        const held = await local.heldManifest(link, digest);
        if (held) return local.answer(link, 'manifest', held, 'hit');
        if (options.isOffline(link.upstream)) throw new OciError('MANIFEST_UNKNOWN', `manifest ${digest.value} is not cached here, and upstream ${link.upstream} is offline`);
        try {
          const fetched = await deps.manifests.fetch(route.upstream, link, digest.value, { accept: MANIFEST_MEDIA_TYPES, credentials: access.upstreamCredentials(link, undefined), expected: digest });
          return local.answer(link, 'manifest', fetched, 'miss');
        } catch (err) {
          throw notFound(err, 'MANIFEST_UNKNOWN', `manifest ${digest.value} of ${repository}`);
        }
      }),
  };
}
