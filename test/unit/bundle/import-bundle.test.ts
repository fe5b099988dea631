import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { importBundle } from '../../../src/bundle/import-bundle.js';
import { TarWriter } from '../../../src/bundle/tar.js';
import { createStorageKeeper } from '../../../src/cache/storage-keeper.js';
import { createSilentLogger } from '../../../src/logger.js';
import { createMetrics } from '../../../src/metrics.js';
import { parseDigest } from '../../../src/oci/digest.js';
import { createBlobStore, type BlobStore } from '../../../src/storage/blob-store.js';
import { createContentStore } from '../../../src/storage/content-store.js';
import { createManifestCache } from '../../../src/storage/manifest-cache.js';
import { createMetadataIndex, type MetadataIndex } from '../../../src/storage/metadata-index.js';
import { blobsOf, makeImage, OCI, type Blob, type ImageManifest } from '../../helpers/images.js';

const NAME = 'docker.io/library/app:1';

/** An OCI image layout tar of `image`, and of `extra` blobs (which may repeat its own), as chunks. */
async function bundleOf(image: ImageManifest, extra: readonly Blob[] = []): Promise<Buffer[]> {
  const out = new PassThrough();
  const chunks: Buffer[] = [];
  out.on('data', (chunk: Buffer) => chunks.push(chunk));
  const tar = new TarWriter(out);
  await tar.addBuffer('oci-layout', Buffer.from('{"imageLayoutVersion":"1.0.0"}'));
  const index = { schemaVersion: 2, manifests: [{ mediaType: OCI.manifest, digest: image.digest, size: image.bytes.length, annotations: { 'io.containerd.image.name': NAME } }] };
  await tar.addBuffer('index.json', Buffer.from(JSON.stringify(index)));
  for (const blob of [image, ...blobsOf(image), ...extra]) await tar.addBuffer(`blobs/sha256/${blob.digest.slice(7)}`, blob.bytes);
  await tar.finish();
  out.end();
  return chunks;
}

async function* feed(chunks: readonly Buffer[], pause?: { after: number; until: Promise<void> }): AsyncIterable<Buffer> {
  let sent = 0;
  for (const chunk of chunks) {
    if (pause && sent >= pause.after) {
      await pause.until;
      pause = undefined;
    }
    sent += chunk.length;
    yield chunk;
  }
}

describe('importBundle', () => {
  let root: string;
  let store: BlobStore;
  let index: MetadataIndex;
  const onDisk = (digest: string) => existsSync(path.join(root, 'blobs', 'sha256', digest.slice(7, 9), digest.slice(7)));
  const tmpEntries = () => readdir(path.join(root, 'tmp'));
  const run = (input: AsyncIterable<Buffer>, on: MetadataIndex = index) => importBundle(input, { content: createContentStore({ files: store, index: on }), index: on, upstreamHosts: new Set(['docker.io']), now: Date.now, maxManifestBytes: 4 * 2 ** 20 }, { pin: true });

  beforeEach(async () => {
    root = await mkdtemp(path.join(tmpdir(), 'pullthrough-import-'));
    store = createBlobStore({ root });
    await store.init();
    index = createMetadataIndex({ path: path.join(root, 'index.db') }, { now: Date.now });
  });
  afterEach(async () => {
    index.close();
    await rm(root, { recursive: true, force: true });
  });

  it('discards the staged copy of a blob that is already cached', async () => {
    const image = makeImage({ layerSizes: [1000] });
    const cached = image.layers[0]!;
    await store.writeAll(parseDigest(cached.digest), cached.bytes);
    index.putContent({ digest: cached.digest, size: cached.bytes.length, mediaType: null, kind: 'blob' });
    await run(feed(await bundleOf(image)));
    assert.deepEqual(await tmpEntries(), []);
    assert.ok(onDisk(cached.digest));
  });

  it('leaves no temp file when a bundle holds one digest twice', async () => {
    const image = makeImage({ layerSizes: [1000] });
    await run(feed(await bundleOf(image, [image.layers[0]!])));
    assert.deepEqual(await tmpEntries(), []);
    assert.ok(onDisk(image.layers[0]!.digest));
  });

  it('keeps its staged files through a garbage collection that runs while it reads', async () => {
    const image = makeImage({ layerSizes: [200_000, 1000] });
    let resume!: () => void;
    const paused = new Promise<void>((resolve) => (resume = resolve));
    const chunks = await bundleOf(image);
    const importing = run(feed(chunks, { after: chunks.reduce((n, c) => n + c.length, 0) - 4096, until: paused }));
    // Hours later, as far as gc can tell: every temp file looks dead.
    const keeper = createStorageKeeper(
      { maxBytes: 0, highWatermark: 0.9, lowWatermark: 0.8, fillTimeoutMs: 60_000 },
      { index, store, memory: createManifestCache({ maxBytes: 1 }), metrics: createMetrics({ withDefaultMetrics: false }), logger: createSilentLogger(), now: () => Date.now() + 10 * 3_600_000 },
    );
    await new Promise((resolve) => setTimeout(resolve, 100));
    await keeper.collectGarbage(3_600_000);
    resume();
    const result = await importing;
    assert.deepEqual(result.images, [NAME]);
    for (const blob of blobsOf(image)) assert.ok(onDisk(blob.digest), `${blob.digest} was imported`);
  });

  it('leaves the cache as it was when committing fails part-way', async () => {
    const image = makeImage({ layerSizes: [1000, 2000] });
    const failing = new Proxy(index, {
      get(target, property) {
        if (property === 'putTag') return () => { throw new Error('disk I/O error'); };
        const value = Reflect.get(target, property) as unknown;
        return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
      },
    });
    await assert.rejects(run(feed(await bundleOf(image)), failing), /disk I\/O error/);
    assert.deepEqual(index.allDigests(), [], 'no index row is left behind');
    for (const blob of [image, ...blobsOf(image)]) assert.equal(onDisk(blob.digest), false, `${blob.digest} is not left in blobs/`);
    assert.deepEqual(await tmpEntries(), []);
  });
});
