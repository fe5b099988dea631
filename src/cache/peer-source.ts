import { PassThrough, pipeline, Transform, type Readable } from 'node:stream';
import type { Logger } from '../logger.js';
import type { Digest } from '../oci/digest.js';
import type { ClusterMembers } from '../upstream/cluster-members.js';
import type { Peer } from '../upstream/peer-client.js';
import type { BlobResponse, RequestOptions, Upstream } from '../upstream/upstream-client.js';
import { UpstreamError } from '../upstream/upstream-error.js';

/** Where the blob fills of one instance get bytes when it is one member of a cluster. */
export interface PeerSources {
  /**
   * For a digest another member owns: the upstream as fills see it, with the members asked first
   * in placement order, then the upstream itself. Undefined when this member owns the digest
   * (it fills from the upstream, as a single node does).
   */
  blobSource(upstream: Upstream, digest: Digest): Upstream | undefined;
  /** The same for a manifest by digest (the manifest fill verifies it against the digest). */
  manifestSource(upstream: Upstream, digest: Digest): Upstream | undefined;
  readonly members: ClusterMembers;
}

/** Drops the first `count` bytes of a body: a source that cannot resume at an offset resends from 0. */
function skipBytes(count: number): Transform {
  let left = count;
  return new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      if (left >= chunk.length) {
        left -= chunk.length;
        return callback();
      }
      const rest = left > 0 ? chunk.subarray(left) : chunk;
      left = 0;
      callback(null, rest);
    },
  });
}

/**
 * Reads a blob from the first source that answers, and when a body breaks off (a member killed
 * mid-pull) goes on from the same offset with the next one: members with `Range`, the upstream
 * last (from the start, the bytes before the offset dropped). The fill above verifies the whole
 * digest whatever the bytes came from, so a member can cost time, never correctness.
 */
async function readAcross(sources: ReadonlyArray<(offset: number) => Promise<BlobResponse>>, logger: Logger, digest: string): Promise<BlobResponse> {
  let index = 0;
  let first: BlobResponse | undefined;
  let lastError: unknown;
  for (; index < sources.length && !first; index++) {
    try {
      first = await sources[index]!(0);
    } catch (err) {
      lastError = err;
    }
  }
  if (!first) throw lastError;
  const size = first.size;
  const out = new PassThrough({ highWaterMark: 64 * 1024 });
  let current: Readable = first.body;
  let offset = 0;
  out.once('close', () => current.destroy());
  void (async () => {
    for (;;) {
      try {
        for await (const chunk of current) {
          offset += (chunk as Buffer).length;
          if (!out.write(chunk)) await new Promise((resolve) => out.once('drain', resolve).once('close', resolve));
          if (out.destroyed) return;
        }
        out.end();
        return;
      } catch (err) {
        if (out.destroyed) return;
        let next: BlobResponse | undefined;
        while (!next && index < sources.length) {
          logger.warn({ digest, offset, err: (err as Error).message }, 'blob body from a cluster member broke off: going on from the next source');
          try {
            next = await sources[index++]!(offset);
          } catch {
            // That one cannot either: the next.
          }
        }
        if (!next || (size !== undefined && next.size !== undefined && next.size !== size)) return void out.destroy(err as Error);
        current = next.body;
        if (out.destroyed) return void current.destroy();
      }
    }
  })();
  return { size, body: out };
}

/** The members as sources of blob bytes, placed by rendezvous hashing of the digest. */
export function createPeerSources(members: ClusterMembers, deps: { logger: Logger }): PeerSources {
  /** The members ranked above this one for `digest`: those below would send it back here, so from here on it is the upstream. */
  function peersBefore(digest: Digest): Peer[] {
    const peers: Peer[] = [];
    for (const member of members.rank(digest.value)) {
      if (member.isSelf) break;
      peers.push(member.peer);
    }
    return peers;
  }

  return {
    members,
    manifestSource(upstream, digest) {
      const peers = peersBefore(digest);
      if (peers.length === 0) return undefined;
      const getManifest: Upstream['getManifest'] = async (repository, reference, options) => {
        for (const peer of peers) {
          try {
            const { bytes, mediaType } = await peer.getManifest(upstream.host, repository, reference, { maxBytes: options.maxBytes, onChunk: options.onChunk });
            return { digest: undefined, mediaType, size: bytes.length, bytes };
          } catch (err) {
            // The read budget's refusal is this instance's, not the member's: no other source will do better now.
            if (!(err instanceof UpstreamError)) throw err;
          }
        }
        return upstream.getManifest(repository, reference, options);
      };
      return { ...upstream, getManifest };
    },
    blobSource(upstream, digest) {
      const peers = peersBefore(digest);
      if (peers.length === 0) return undefined;
      const getBlob = (repository: string, blobDigest: string, options: RequestOptions = {}): Promise<BlobResponse> => {
        const fromPeers = peers.map((peer) => (offset: number) => peer.getBlob(upstream.host, repository, blobDigest, { signal: options.signal, offset }));
        // The upstream, with the requester's credentials: the cluster never carries them. From an
        // offset with Range where it can; an upstream that cannot resends all, the start dropped.
        const fromUpstream = async (offset: number): Promise<BlobResponse> => {
          if (offset === 0) return upstream.getBlob(repository, blobDigest, options);
          try {
            const rest = await upstream.getBlob(repository, blobDigest, { ...options, offset });
            return { size: rest.size === undefined ? undefined : offset + rest.size, body: rest.body };
          } catch (err) {
            if (!(err instanceof UpstreamError && err.kind === 'invalid')) throw err;
            const whole = await upstream.getBlob(repository, blobDigest, options);
            return { size: whole.size, body: pipeline(whole.body, skipBytes(offset), () => undefined) };
          }
        };
        return readAcross([...fromPeers, fromUpstream], deps.logger, blobDigest);
      };
      return { ...upstream, getBlob };
    },
  };
}
