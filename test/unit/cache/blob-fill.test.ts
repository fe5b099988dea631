import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { createBlobFills } from '../../../src/cache/blob-fill.js';
import { createSilentLogger } from '../../../src/logger.js';
import { createMetrics } from '../../../src/metrics.js';
import { parseDigest } from '../../../src/oci/digest.js';
import { createBlobStore } from '../../../src/storage/blob-store.js';
import { createContentStore, type ContentStore } from '../../../src/storage/content-store.js';
import { createMetadataIndex } from '../../../src/storage/metadata-index.js';
import type { Upstream } from '../../../src/upstream/upstream-client.js';
import { sha256 } from '../../helpers/images.js';

describe('blob fills', () => {
  let root: string;
  before(async () => {
    root = await mkdtemp(path.join(tmpdir(), 'pullthrough-fill-unit-'));
  });
  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it('stops being joinable before its temp file is discarded', async () => {
    const files = createBlobStore({ root });
    await files.init();
    let discarding!: () => void;
    const discardStarted = new Promise<void>((resolve) => (discarding = resolve));
    let finishDiscard!: () => void;
    const discardMayFinish = new Promise<void>((resolve) => (finishDiscard = resolve));
    const index = createMetadataIndex({ path: ':memory:' }, { now: Date.now });
    const real = createContentStore({ files, index });
    // A slow disk: the discard takes a while, and a request may arrive meanwhile.
    const content: ContentStore = {
      ...real,
      async beginWrite(digest, options) {
        const write = await real.beginWrite(digest, options);
        const abort = write.abort.bind(write);
        write.abort = async (reason) => {
          discarding();
          await discardMayFinish;
          await abort(reason);
        };
        return write;
      },
    };
    const upstreamBytes = Buffer.from('not what the digest says');
    const upstream = { host: 'docker.io', getBlob: async () => ({ size: upstreamBytes.length, body: Readable.from([upstreamBytes]) }) } as unknown as Upstream;
    const space = { claim: async () => ({ bytes: Infinity, grow: async () => undefined, release: () => undefined }) };
    const fills = createBlobFills({ fillTimeoutMs: 10_000, maxConcurrentFills: 4 }, { content, space, metrics: createMetrics({ withDefaultMetrics: false }), logger: createSilentLogger() });
    const digest = parseDigest(sha256(Buffer.from('the real content')));
    const link = { upstream: 'docker.io', repository: 'library/app' };

    const first = await fills.join(upstream, link, digest, undefined);
    await discardStarted;
    assert.equal(fills.runningFor('docker.io', digest), undefined, 'a request now must start a new fill, not join one on its way out');
    finishDiscard();
    await first.done;
    index.close();
  });
});
