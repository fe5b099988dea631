import { Readable } from 'node:stream';
import type { Credentials } from '../../src/config/credentials.js';
import type { BlobResponse, ManifestResponse, RequestOptions, Upstream, UpstreamHealth } from '../../src/upstream/upstream-client.js';
import { UpstreamError } from '../../src/upstream/upstream-error.js';
import type { ListPage, ReferrersPage } from '../../src/upstream/upstream-lists.js';
import type { Blob, ImageIndex, ImageManifest } from '../helpers/images.js';

/*
 * An in-process upstream for registry-level unit tests: the `Upstream` interface itself, no
 * HTTP, so every call the cache makes is counted exactly (distribution's `statsBlobStore` in
 * registry/proxy/proxyblobstore_test.go). Faults are switches: an outage, a private repository,
 * a blob body held until released, a body that does not match its digest.
 */

/** The `Upstream` methods the cache can call, each counted. */
export type UpstreamMethod = 'getManifest' | 'headManifest' | 'getBlob' | 'headBlob' | 'listTagsPage' | 'getReferrersPage';

export const UPSTREAM_METHODS: readonly UpstreamMethod[] = ['getManifest', 'headManifest', 'getBlob', 'headBlob', 'listTagsPage', 'getReferrersPage'];

export type CallCounts = Record<UpstreamMethod, number>;

/** One call as the fake saw it; `username` is undefined for an anonymous one. */
export interface UpstreamCall {
  readonly method: UpstreamMethod;
  readonly repository: string;
  /** Tag or digest; undefined for tag and referrer listings. */
  readonly reference: string | undefined;
  readonly username: string | undefined;
}

/** How the fake fails while down: the kinds `isUpstreamOutage` takes as "cannot answer now". */
export type Outage = 'unreachable' | 'timeout' | 503 | 429;

/** A blob body held after its first bytes until {@link BlobGate.release}. */
export interface BlobGate {
  /** Resolves once a getBlob of the gated digest has begun sending. */
  readonly opened: Promise<void>;
  /** Lets every held body (and every later one) finish. */
  release(): void;
}

export interface CountingUpstream extends Upstream {
  /** Calls per method since the start or the last {@link reset}; failed calls count too. */
  counts(): CallCounts;
  /** Every call since the start or the last {@link reset}, in order. */
  readonly calls: readonly UpstreamCall[];
  reset(): void;
  addBlob(repository: string, blob: Blob): void;
  addManifest(repository: string, manifest: Blob, tag?: string): void;
  /** An image (or index) and every blob it names, under `tag`. */
  addImage(repository: string, tag: string, image: ImageManifest | ImageIndex): void;
  /** Points an existing tag at another manifest (a push upstream). */
  retag(repository: string, tag: string, digest: string): void;
  /** Every call throws the outage's UpstreamError while set; `false` brings the upstream back. */
  setDown(outage: Outage | false): void;
  /** The repository then answers only these users (`username → password`); `undefined` makes it public again. */
  setPrivate(repository: string, users: Readonly<Record<string, string>> | undefined): void;
  /** The next and later bodies of `digest` pause after `beforeBytes` until released. */
  gateBlob(digest: string, beforeBytes?: number): BlobGate;
  /** Releases every gate (a test that failed midway must not leave a fill waiting forever). */
  releaseGates(): void;
  /** Bodies of `digest` come with one byte flipped (same length): the digest no longer matches. */
  corruptBlob(digest: string, isCorrupt?: boolean): void;
}

interface StoredManifest {
  readonly bytes: Buffer;
  readonly mediaType: string;
}

interface Repository {
  readonly manifests: Map<string, StoredManifest>;
  readonly tags: Map<string, string>;
  readonly blobs: Map<string, Buffer>;
  users: Readonly<Record<string, string>> | undefined;
}

function zeroCounts(): CallCounts {
  return { getManifest: 0, headManifest: 0, getBlob: 0, headBlob: 0, listTagsPage: 0, getReferrersPage: 0 };
}

/** A body that sends `bytes` in one chunk, or pauses after `beforeBytes` until `gate` settles. */
function bodyOf(bytes: Buffer, gate?: { beforeBytes: number; released: Promise<void>; onOpen: () => void }): Readable {
  if (!gate) return Readable.from([bytes], { objectMode: false });
  return Readable.from(
    (async function* () {
      gate.onOpen();
      if (gate.beforeBytes > 0) yield bytes.subarray(0, gate.beforeBytes);
      await gate.released;
      yield bytes.subarray(gate.beforeBytes);
    })(),
    { objectMode: false },
  );
}

export function createCountingUpstream(host = 'registry.example'): CountingUpstream {
  const repositories = new Map<string, Repository>();
  const gates = new Map<string, { beforeBytes: number; released: Promise<void>; onOpen: () => void; release: () => void }>();
  const corrupt = new Set<string>();
  let counts = zeroCounts();
  let calls: UpstreamCall[] = [];
  let down: Outage | false = false;

  const repositoryOf = (name: string): Repository => {
    let repository = repositories.get(name);
    if (!repository) {
      repository = { manifests: new Map(), tags: new Map(), blobs: new Map(), users: undefined };
      repositories.set(name, repository);
    }
    return repository;
  };

  function outageError(outage: Outage): UpstreamError {
    if (outage === 'unreachable') return new UpstreamError('unreachable', host, `upstream ${host} is unreachable: ECONNREFUSED`);
    if (outage === 'timeout') return new UpstreamError('timeout', host, `upstream ${host} timed out`);
    return new UpstreamError('status', host, `upstream ${host} answered ${outage}`, { status: outage });
  }

  /** Counts the call, then applies the switches in the order a real upstream would: reachable, then authorized. */
  function enter(method: UpstreamMethod, name: string, reference: string | undefined, options: RequestOptions | undefined): Repository | undefined {
    counts[method] += 1;
    calls.push({ method, repository: name, reference, username: options?.credentials?.username });
    if (down) throw outageError(down);
    const repository = repositories.get(name);
    if (repository?.users && !isAllowed(repository.users, options?.credentials)) {
      throw new UpstreamError('auth', host, `upstream ${host} refused access to ${name} (401)`, { status: 401 });
    }
    return repository;
  }

  function isAllowed(users: Readonly<Record<string, string>>, credentials: Credentials | undefined): boolean {
    return credentials !== undefined && Object.hasOwn(users, credentials.username) && users[credentials.username] === credentials.password;
  }

  const notFound = (what: string) => new UpstreamError('status', host, `upstream ${host} answered 404 for ${what}`, { status: 404 });

  function manifestOf(repository: Repository | undefined, name: string, reference: string): StoredManifest & { digest: string } {
    const digest = reference.includes(':') ? reference : repository?.tags.get(reference);
    const manifest = digest === undefined ? undefined : repository?.manifests.get(digest);
    if (!manifest || digest === undefined) throw notFound(`manifest ${name}:${reference}`);
    return { ...manifest, digest };
  }

  function blobOf(repository: Repository | undefined, name: string, digest: string): Buffer {
    const bytes = repository?.blobs.get(digest);
    if (!bytes) throw notFound(`blob ${digest} of ${name}`);
    return bytes;
  }

  const upstream: CountingUpstream = {
    host,

    async getManifest(name, reference, options): Promise<ManifestResponse & { bytes: Buffer }> {
      const manifest = manifestOf(enter('getManifest', name, reference, options), name, reference);
      if (manifest.bytes.length > options.maxBytes) throw new UpstreamError('invalid', host, `manifest ${name}:${reference} is over the ${options.maxBytes}-byte limit`);
      options.onChunk?.(manifest.bytes.length);
      return { digest: manifest.digest, mediaType: manifest.mediaType, size: manifest.bytes.length, bytes: Buffer.from(manifest.bytes) };
    },

    async headManifest(name, reference, options): Promise<ManifestResponse> {
      const manifest = manifestOf(enter('headManifest', name, reference, options), name, reference);
      return { digest: manifest.digest, mediaType: manifest.mediaType, size: manifest.bytes.length };
    },

    async getBlob(name, digest, options): Promise<BlobResponse> {
      const stored = blobOf(enter('getBlob', name, digest, options), name, digest);
      let bytes = stored;
      if (corrupt.has(digest)) {
        bytes = Buffer.from(stored);
        bytes[bytes.length - 1] = (bytes[bytes.length - 1] ?? 0) ^ 0xff;
      }
      return { size: bytes.length, body: bodyOf(bytes, gates.get(digest)) };
    },

    async headBlob(name, digest, options) {
      return { size: blobOf(enter('headBlob', name, digest, options), name, digest).length };
    },

    async listTagsPage(name, options): Promise<ListPage<string>> {
      const repository = enter('listTagsPage', name, undefined, options);
      if (!repository) throw notFound(`tags of ${name}`);
      return { items: [...repository.tags.keys()].sort(), next: undefined };
    },

    async getReferrersPage(name, _digest, options): Promise<ReferrersPage> {
      enter('getReferrersPage', name, undefined, options);
      // As distribution 2.x and Docker Hub: no referrers API.
      return { kind: 'unsupported', isRepositoryUnknown: false };
    },

    health(): UpstreamHealth {
      return { lastOkAt: undefined, lastErrorAt: undefined, lastError: undefined, rateLimitRemaining: undefined, breaker: 'closed' };
    },
    close: async () => undefined,
    destroy: async () => undefined,

    counts: () => ({ ...counts }),
    get calls() {
      return calls;
    },
    reset() {
      counts = zeroCounts();
      calls = [];
    },

    addBlob(name, blob) {
      repositoryOf(name).blobs.set(blob.digest, blob.bytes);
    },
    addManifest(name, manifest, tag) {
      const repository = repositoryOf(name);
      repository.manifests.set(manifest.digest, { bytes: manifest.bytes, mediaType: manifest.mediaType });
      if (tag !== undefined) repository.tags.set(tag, manifest.digest);
    },
    addImage(name, tag, image) {
      const images = 'images' in image ? image.images : [image];
      for (const manifest of images) {
        for (const blob of [manifest.config, ...manifest.layers]) upstream.addBlob(name, blob);
        upstream.addManifest(name, manifest);
      }
      upstream.addManifest(name, image, tag);
    },
    retag(name, tag, digest) {
      repositoryOf(name).tags.set(tag, digest);
    },
    setDown(outage) {
      down = outage;
    },
    setPrivate(name, users) {
      repositoryOf(name).users = users;
    },
    gateBlob(digest, beforeBytes = 1) {
      let release!: () => void;
      const released = new Promise<void>((resolve) => (release = resolve));
      let onOpen!: () => void;
      const opened = new Promise<void>((resolve) => (onOpen = resolve));
      gates.set(digest, { beforeBytes, released, onOpen, release });
      return {
        opened,
        release() {
          if (gates.get(digest)?.released === released) gates.delete(digest);
          release();
        },
      };
    },
    releaseGates() {
      for (const gate of gates.values()) gate.release();
      gates.clear();
    },
    corruptBlob(digest, isCorrupt = true) {
      if (isCorrupt) corrupt.add(digest);
      else corrupt.delete(digest);
    },
  };
  return upstream;
}

/** The methods named in `expected`, and zero for every other one: what tests assert. */
export function expectedCounts(expected: Partial<CallCounts>): CallCounts {
  return { ...zeroCounts(), ...expected };
}
