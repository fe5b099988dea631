import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import request from 'supertest';
import { createMetadataIndex } from '../../src/storage/metadata-index.js';
import { startFakeUpstream, type FakeUpstream } from '../fakes/fake-upstream.js';
import { blobsOf, makeImage, makeLayer, OCI, sha256, type ImageManifest } from '../helpers/images.js';
import { waitUntil } from '../helpers/processes.js';
import { metricValue, startPullthrough, type RunningPullthrough } from '../helpers/pullthrough.js';

/** An image whose first layer is `shared`. */
function imageWith(shared: ReturnType<typeof makeLayer>, ownSize: number): ImageManifest {
  const image = makeImage({ layerSizes: [ownSize] });
  const layers = [shared, ...image.layers];
  const json = JSON.parse(image.bytes.toString()) as { layers: unknown[] };
  json.layers = layers.map((l) => ({ mediaType: OCI.layer, digest: l.digest, size: l.bytes.length }));
  const bytes = Buffer.from(JSON.stringify(json));
  return { ...image, bytes, digest: sha256(bytes), layers };
}

describe('eviction under storage.maxBytes', () => {
  let upstream: FakeUpstream;
  let cache: RunningPullthrough;
  let clock = Date.UTC(2026, 0, 1);
  let maxBytes = 0;
  const shared = makeLayer('base', 60_000);
  const images = { c: makeImage({ layerSizes: [80_000] }), a: imageWith(shared, 80_000), b: imageWith(shared, 80_000), d: makeImage({ layerSizes: [80_000] }) };
  const bytesOf = (image: ImageManifest) => image.bytes.length + blobsOf(image).reduce((s, b) => s + b.bytes.length, 0);

  before(async () => {
    upstream = await startFakeUpstream();
    for (const [name, image] of Object.entries(images)) upstream.addImage(`library/${name}`, '1', image);
    const total = bytesOf(images.c) + bytesOf(images.a) + bytesOf(images.b) - shared.bytes.length + bytesOf(images.d);
    const onlyA = images.a.bytes.length + images.a.config.bytes.length + images.a.layers[1]!.bytes.length;
    // Chosen so that D's arrival passes the high mark and evicting A alone gets under the low one.
    maxBytes = Math.ceil((total - onlyA) / 0.8);
    cache = await startPullthrough({ upstreams: [{ host: 'docker.io', url: upstream.url, default: true }], storage: { maxBytes, highWatermark: 0.9, lowWatermark: 0.8 }, now: () => clock });
  });
  after(async () => {
    await cache.close();
    await upstream.close();
  });

  async function pull(name: keyof typeof images): Promise<void> {
    clock += 60_000;
    await request(cache.url).get(`/v2/library/${name}/manifests/1`).expect(200);
    for (const blob of blobsOf(images[name])) await request(cache.url).get(`/v2/library/${name}/blobs/${blob.digest}`).expect(200);
  }
  const onDisk = (digest: string) => existsSync(path.join(cache.storageRoot, 'blobs', 'sha256', digest.slice(7, 9), digest.slice(7)));

  it('evicts the least recently used image, keeps a layer another image shares, and never a pinned one', async () => {
    await pull('c');
    // Pinned the way preload and import pin: a row in the index, from another connection.
    const index = createMetadataIndex({ path: path.join(cache.storageRoot, 'index.db') }, { now: () => clock });
    index.pin({ upstream: 'docker.io', repository: 'library/c' }, '1');
    index.close();
    await pull('a');
    await pull('b');
    assert.equal(await metricValue(cache.url, 'pullthrough_evictions_total'), 0, 'under the high mark so far');
    await pull('d');
    await waitUntil(async () => (await metricValue(cache.url, 'pullthrough_evictions_total')) > 0, 'an eviction');
    // D's layer made room before it was written (its claim evicted A): wait for it to land too.
    await waitUntil(async () => (await metricValue(cache.url, 'pullthrough_fills_in_flight')) === 0, "D's last fill to commit");

    assert.equal(onDisk(images.a.layers[1]!.digest), false, "A's own layer is gone");
    assert.equal(onDisk(images.a.digest), false, "A's manifest went with it");
    assert.equal(onDisk(shared.digest), true, 'the layer B shares stays');
    for (const name of ['b', 'c', 'd'] as const) for (const blob of blobsOf(images[name])) assert.ok(onDisk(blob.digest), `${name} is whole`);
    assert.ok((await metricValue(cache.url, 'pullthrough_cache_size_bytes')) <= maxBytes * 0.8, 'down to the low watermark');

    upstream.requests.length = 0;
    await pull('c');
    await pull('b');
    assert.equal(upstream.requests.length, 0, 'B, C and D are still served from the cache');
    await pull('a');
    assert.ok(upstream.count('GET', /\/library\/a\/manifests\/1$/) === 1, 'A is fetched again, whole');
  });
});
