import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createStorageKeeper } from '../../../src/cache/storage-keeper.js';
import { createSilentLogger } from '../../../src/logger.js';
import { createMetrics } from '../../../src/metrics.js';
import { OciError } from '../../../src/oci/errors.js';
import { createBlobStore } from '../../../src/storage/blob-store.js';
import { createManifestCache } from '../../../src/storage/manifest-cache.js';
import { createMetadataIndex } from '../../../src/storage/metadata-index.js';

const d = (c: string) => `sha256:${c.repeat(64)}`;

describe('storage keeper: space claims under maxBytes', () => {
  let root: string;
  before(async () => {
    root = await mkdtemp(path.join(tmpdir(), 'pullthrough-keeper-'));
  });
  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  function keeperOf(maxBytes: number) {
    const store = createBlobStore({ root });
    const index = createMetadataIndex({ path: ':memory:' }, { now: () => 1 });
    const keeper = createStorageKeeper(
      { maxBytes, highWatermark: 0.9, lowWatermark: 0.8, fillTimeoutMs: 60_000 },
      { index, store, memory: createManifestCache({ maxBytes: 1024 }), metrics: createMetrics({ withDefaultMetrics: false }), logger: createSilentLogger(), now: () => 1 },
    );
    return { keeper, index };
  }

  it('counts claims of running fills against maxBytes, and gives them back on release', async () => {
    const { keeper, index } = keeperOf(1000);
    const first = await keeper.claim(600);
    assert.equal(keeper.claimedBytes, 600);
    await assert.rejects(keeper.claim(600), (err: unknown) => err instanceof OciError && err.code === 'UNAVAILABLE' && Number(err.headers['retry-after']) > 0);
    assert.equal(keeper.claimedBytes, 600, 'a refused claim holds nothing');
    await first.grow(400);
    assert.equal(keeper.claimedBytes, 1000);
    await assert.rejects(first.grow(1), OciError, 'a claim cannot grow past maxBytes either');
    first.release();
    first.release();
    assert.equal(keeper.claimedBytes, 0, 'release is idempotent');
    (await keeper.claim(1000)).release();
    index.close();
  });

  it('evicts least recently used content to make room for a claim, never what is pinned', async () => {
    const { keeper, index } = keeperOf(1000);
    const link = { upstream: 'docker.io', repository: 'library/app' };
    index.putContent({ digest: d('a'), size: 500, mediaType: null, kind: 'blob' }, link);
    index.putContent({ digest: d('b'), size: 400, mediaType: 'application/vnd.oci.image.manifest.v1+json', kind: 'manifest' }, link);
    index.putTag(link, 'pinned', { digest: d('b'), mediaType: 'application/vnd.oci.image.manifest.v1+json', checkedAt: 1 });
    index.pin(link, 'pinned');
    const claim = await keeper.claim(500);
    assert.equal(index.getContent(d('a')), undefined, 'the unpinned blob made room');
    assert.ok(index.getContent(d('b')), 'the pinned manifest stays');
    await assert.rejects(keeper.claim(200), OciError, 'pins and running fills leave no room');
    claim.release();
    index.close();
  });

  it('claims nothing against an unbounded cache', async () => {
    const { keeper, index } = keeperOf(0);
    const claim = await keeper.claim(10 ** 12);
    await claim.grow(10 ** 12);
    assert.equal(claim.bytes, 2 * 10 ** 12);
    assert.equal(keeper.claimedBytes, 0);
    claim.release();
    index.close();
  });
});
