import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { createAccessPolicy, type ConfiguredCredentials } from '../../src/cache/access-policy.js';
import { createBlobFills, type BlobFills } from '../../src/cache/blob-fill.js';
import { createManifestFill } from '../../src/cache/manifest-fill.js';
import { createPullThroughRegistry } from '../../src/cache/pull-through-registry.js';
import type { BlobResult, BlobSender, ManifestResult, Registry } from '../../src/cache/registry.js';
import { createStorageKeeper } from '../../src/cache/storage-keeper.js';
import { createTagTtlPolicy } from '../../src/cache/tag-freshness.js';
import type { Credentials } from '../../src/config/credentials.js';
import { createSilentLogger } from '../../src/logger.js';
import { createMetrics, type Metrics } from '../../src/metrics.js';
import { parseDigest } from '../../src/oci/digest.js';
import { parseManifestReference } from '../../src/oci/reference.js';
import { createBlobStore } from '../../src/storage/blob-store.js';
import { createManifestCache } from '../../src/storage/manifest-cache.js';
import { createMetadataIndex } from '../../src/storage/metadata-index.js';
import { createUpstreamRouter } from '../../src/upstream/upstream-router.js';
import { createCountingUpstream, type CountingUpstream } from './counting-upstream.js';
import { createMemoryContentStore } from './memory-content-store.js';

/*
 * The registry as src/app.ts composes it, over a CountingUpstream and a controllable clock, for
 * registry-level unit tests. Every construction is here, and tests go through the helpers below
 * rather than the port itself: when the content store and the proxy-over-local-registry shape
 * land (issue 14), this file changes and the tests do not.
 */

/** Every manifest media type, as a client that takes anything standard sends (containerd, skopeo). */
export const STANDARD_ACCEPT = [
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.docker.distribution.manifest.v2+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
];

export interface HarnessOptions {
  /** The fake's host, also the default upstream (names without a host route to it). */
  readonly host?: string;
  /** @default 60 s */
  readonly tagTtlMs?: number;
  /** @default 300 s */
  readonly accessTtlMs?: number;
  /** @default 10 s */
  readonly notFoundTtlMs?: number;
  /** Configured upstream credentials (none by default). */
  readonly configured?: ConfiguredCredentials;
  /** @default 64 */
  readonly maxConcurrentFills?: number;
}

export interface PullOptions {
  readonly credentials?: Credentials | undefined;
  readonly method?: 'GET' | 'HEAD';
  readonly accept?: readonly string[];
}

export interface RegistryHarness {
  readonly registry: Registry;
  readonly upstream: CountingUpstream;
  readonly metrics: Metrics;
  readonly clock: { now(): number; advance(ms: number): void };
  /** Makes the upstream offline (config `offline`): the cache alone answers. */
  setOffline(isOffline: boolean): void;
  /** `registry.getBlob` for `name` (routed like a client's `/v2/<name>/blobs/<digest>`). */
  getBlob(name: string, digest: string, options?: PullOptions): Promise<BlobResult & { send?: BlobSender }>;
  /** `registry.getManifest` by tag or digest. */
  getManifest(name: string, reference: string, options?: PullOptions): Promise<ManifestResult>;
  /** Why a cached manifest was served without the upstream's confirmation (the port's `staleWarning` today), or undefined. */
  staleReason(result: ManifestResult): string | undefined;
  /** `registry.listTags`; `staleReason` is set when cached tags stand in for the upstream's list. */
  listTags(name: string, options?: { n?: number; last?: string; credentials?: Credentials | undefined }): Promise<{ items: readonly string[]; hasMore: boolean; staleReason: string | undefined }>;
  /** Sends a blob answer into a collecting Writable; rejects as a client's download would fail. */
  read(result: BlobResult): Promise<Buffer>;
  /** The same, never rejecting: what the client got before the answer ended or failed. */
  readSettled(result: BlobResult): Promise<{ bytes: Buffer; error: unknown }>;
  /** Resolves once every fill started so far has committed or failed. */
  settled(): Promise<void>;
  /** Whether `digest` is committed: indexed and on disk. */
  isCached(digest: string): Promise<boolean>;
  /** Writes neither committed nor aborted (temp files, on disk). */
  tempFiles(): Promise<number>;
  close(): Promise<void>;
}

class Collector extends Writable {
  readonly chunks: Buffer[] = [];
  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.chunks.push(Buffer.from(chunk));
    callback();
  }
}

export async function createRegistryHarness(options: HarnessOptions = {}): Promise<RegistryHarness> {
  const host = options.host ?? 'registry.example';
  const tagTtlMs = options.tagTtlMs ?? 60_000;
  const accessTtlMs = options.accessTtlMs ?? 300_000;
  let time = Date.UTC(2026, 11, 1);
  const now = () => time;
  let isOffline = false;

  // Content in memory; the keeper (unbounded here) gets files it never needs to touch.
  const root = await mkdtemp(path.join(tmpdir(), 'pullthrough-registry-'));
  const store = createBlobStore({ root });
  const index = createMetadataIndex({ path: ':memory:' }, { now });
  const content = createMemoryContentStore({ index });
  const metrics = createMetrics({ withDefaultMetrics: false });
  const logger = createSilentLogger();
  const upstream = createCountingUpstream(host);
  const router = createUpstreamRouter([upstream], { defaultHost: host });
  const memory = createManifestCache({ maxBytes: 16 * 2 ** 20 });
  const keeper = createStorageKeeper({ maxBytes: 0, highWatermark: 0.9, lowWatermark: 0.8, fillTimeoutMs: 60_000 }, { index, store, memory, metrics, logger, now });
  const fills = createBlobFills({ fillTimeoutMs: 60_000, maxConcurrentFills: options.maxConcurrentFills ?? 64 }, { content, space: keeper, metrics, logger });
  const manifests = createManifestFill({ maxManifestBytes: 4 * 2 ** 20, readBudgetBytes: 8 * 2 ** 20 }, { content, index, memory, metrics, logger });
  const access = createAccessPolicy({ accessTtlMs: () => accessTtlMs, configured: (h) => (h === host ? options.configured : undefined) }, { index, now, logger });

  // Every fill's end, so a test can wait for the commit that follows a client's last byte.
  const ends = new Set<Promise<void>>();
  const tracked: BlobFills = {
    async join(...args) {
      const joined = await fills.join(...args);
      ends.add(joined.done);
      return joined;
    },
    runningFor: (upstreamHost, digest) => fills.runningFor(upstreamHost, digest),
    get size() {
      return fills.size;
    },
    limit: fills.limit,
    drain: () => fills.drain(),
  };

  const registry = createPullThroughRegistry(
    {
      tagTtlMs: createTagTtlPolicy([{ host, tagTtlMs, tagTtlRules: [] }]),
      notFoundTtlMs: () => options.notFoundTtlMs ?? 10_000,
      isOffline: () => isOffline,
      prefetchBlobs: 0,
    },
    { router, store: content, index, manifests, fills: tracked, access, metrics, logger, now },
  );

  async function readSettled(result: BlobResult & { send?: BlobSender }): Promise<{ bytes: Buffer; error: unknown }> {
    if (!result.send) throw new Error(`no body to read: a ${result.result} answer without a sender (HEAD)`);
    const collector = new Collector();
    try {
      await result.send(collector);
      return { bytes: Buffer.concat(collector.chunks), error: undefined };
    } catch (error) {
      return { bytes: Buffer.concat(collector.chunks), error };
    }
  }

  return {
    registry,
    upstream,
    metrics,
    clock: {
      now,
      advance(ms) {
        time += ms;
      },
    },
    setOffline(value) {
      isOffline = value;
    },
    getBlob(name, digest, { credentials, method = 'GET' } = {}) {
      return method === 'HEAD' ? registry.statBlob({ name }, parseDigest(digest), { credentials }) : registry.getBlob({ name }, parseDigest(digest), { credentials });
    },
    getManifest(name, reference, { credentials, accept = STANDARD_ACCEPT } = {}) {
      return registry.getManifest({ name }, parseManifestReference(reference), { accept, credentials });
    },
    staleReason: (result) => result.staleBecause,
    async listTags(name, { n, last, credentials } = {}) {
      const page = await registry.listTags({ name }, { n, last, credentials });
      return { items: page.items, hasMore: page.hasMore, staleReason: page.staleBecause };
    },
    readSettled,
    async read(result) {
      const { bytes, error } = await readSettled(result);
      if (error !== undefined) throw error;
      return bytes;
    },
    async settled() {
      // A fill ending may not start another, but a test may have joined more since the last look.
      while (ends.size > 0) {
        const pending = [...ends];
        ends.clear();
        await Promise.all(pending);
      }
    },
    async isCached(digest) {
      return index.getContent(digest) !== undefined && content.committed.has(digest);
    },
    async tempFiles() {
      return content.openWrites;
    },
    async close() {
      upstream.releaseGates();
      await fills.drain();
      index.close();
      await rm(root, { recursive: true, force: true });
    },
  };
}
