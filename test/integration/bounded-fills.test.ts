import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, before, after, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { startFakeUpstream, type FakeUpstream } from '../fakes/fake-upstream.js';
import { blobsOf, makeImage, makeRawBlob, OCI, sha256, type Blob } from '../helpers/images.js';
import { waitUntil } from '../helpers/processes.js';
import { metricValue, startPullthrough, type RunningPullthrough } from '../helpers/pullthrough.js';

const MiB = 2 ** 20;
const REPO = 'library/app';

/** Bytes of every file under the storage root but the index: blobs/ and tmp/. */
async function bytesOnDisk(root: string): Promise<number> {
  let total = 0;
  for (const entry of await readdir(root, { recursive: true, withFileTypes: true }).catch(() => [])) {
    if (!entry.isFile() || entry.name.startsWith('index.db')) continue;
    total += (await stat(path.join(entry.parentPath, entry.name)).catch(() => ({ size: 0 }))).size;
  }
  return total;
}

/** Samples the disk every 10 ms until `stop` is called; resolves to the largest sample. */
function watchDisk(root: string): { stop: () => Promise<number> } {
  let peak = 0;
  let running = true;
  const loop = (async () => {
    while (running) {
      peak = Math.max(peak, await bytesOnDisk(root));
      await sleep(10);
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return Math.max(peak, await bytesOnDisk(root));
    },
  };
}

function blobPath(root: string, digest: string): string {
  const hex = digest.slice('sha256:'.length);
  return path.join(root, 'blobs', 'sha256', hex.slice(0, 2), hex);
}

describe('fills within storage.maxBytes and cache.maxConcurrentFills', () => {
  let upstream: FakeUpstream;
  let cache: RunningPullthrough | undefined;

  before(async () => {
    upstream = await startFakeUpstream();
  });
  afterEach(async () => {
    await cache?.close();
    cache = undefined;
  });
  after(async () => {
    await upstream.close();
  });

  it('counts running fills against maxBytes: 12 concurrent 5 MiB fills under 10 MiB never pass 11 MiB on disk, the rest get 503 with Retry-After', async () => {
    const maxBytes = 10 * MiB;
    cache = await startPullthrough({ upstreams: [{ host: 'docker.io', url: upstream.url, default: true }], storage: { maxBytes } });
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const blobs: Blob[] = Array.from({ length: 12 }, () => makeRawBlob(5 * MiB));
    for (const blob of blobs) {
      upstream.addBlob(blob);
      upstream.setFault(blob.digest, { type: 'gate', beforeBytes: blob.bytes.length - 1, release: gate });
    }
    const disk = watchDisk(cache.storageRoot);
    const url = cache.url;
    const responses = await Promise.all(blobs.map((blob) => fetch(`${url}/v2/${REPO}/blobs/${blob.digest}`)));
    const accepted = responses.filter((r) => r.status === 200);
    const refused = responses.filter((r) => r.status === 503);
    assert.equal(accepted.length + refused.length, 12, `statuses: ${responses.map((r) => r.status).join(',')}`);
    assert.ok(refused.length > 0, 'some fills cannot fit');
    for (const response of refused) {
      assert.ok(Number(response.headers.get('retry-after')) > 0, 'a refused fill says when to retry');
      assert.equal(((await response.json()) as { errors: Array<{ code: string }> }).errors[0]?.code, 'UNAVAILABLE');
    }
    // Every accepted fill has all but its last byte on disk: the peak a naive cache would exceed.
    await waitUntil(async () => (await bytesOnDisk(cache!.storageRoot)) >= accepted.length * (5 * MiB - 1), 'the accepted fills to land');
    release();
    const bodies = await Promise.all(accepted.map(async (r) => Buffer.from(await r.arrayBuffer())));
    for (const body of bodies) assert.equal(body.length, 5 * MiB);
    await waitUntil(async () => (await metricValue(url, 'pullthrough_fills_in_flight')) === 0, 'the fills to end');
    const peak = await disk.stop();
    assert.ok(peak <= 1.1 * maxBytes, `peak on disk ${peak} bytes, over 1.1 × ${maxBytes}`);

    // Room is made by evicting what is cached: a later fill fits again.
    for (const blob of blobs) upstream.setFault(blob.digest, undefined);
    const refusedDigest = blobs[responses.findIndex((r) => r.status === 503)]!;
    const retry = await fetch(`${url}/v2/${REPO}/blobs/${refusedDigest.digest}`);
    assert.equal(retry.status, 200);
    assert.ok(Buffer.from(await retry.arrayBuffer()).equals(refusedDigest.bytes));
    assert.ok((await bytesOnDisk(cache.storageRoot)) <= 1.1 * maxBytes);
  });

  it('aborts a fill of unknown length once it grows past what fits, and leaves nothing behind', async () => {
    const maxBytes = 10 * MiB;
    cache = await startPullthrough({ upstreams: [{ host: 'docker.io', url: upstream.url, default: true }], storage: { maxBytes } });
    const huge = makeRawBlob(24 * MiB);
    upstream.addBlob(huge);
    // A chunked body: what it needs cannot be claimed up front.
    upstream.setFault(huge.digest, { type: 'no-length' });
    const disk = watchDisk(cache.storageRoot);
    const response = await fetch(`${cache.url}/v2/${REPO}/blobs/${huge.digest}`).catch((err: unknown) => err as Error);
    if (response instanceof Response) {
      assert.ok(response.status === 503 || response.status === 200, `status ${response.status}`);
      if (response.status === 200) await assert.rejects(response.arrayBuffer(), 'a fill that could not finish is a cut connection');
    }
    await waitUntil(async () => (await metricValue(cache!.url, 'pullthrough_fills_in_flight')) === 0, 'the fill to end');
    const peak = await disk.stop();
    assert.ok(peak <= 1.1 * maxBytes, `peak on disk ${peak} bytes, over 1.1 × ${maxBytes}`);
    assert.equal(existsSync(blobPath(cache.storageRoot, huge.digest)), false);
    assert.deepEqual(await readdir(path.join(cache.storageRoot, 'tmp')), []);
  });

  it('refuses a fill past cache.maxConcurrentFills with 503 and Retry-After', async () => {
    cache = await startPullthrough({ upstreams: [{ host: 'docker.io', url: upstream.url, default: true }], cache: { maxConcurrentFills: 2 } });
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const blobs = Array.from({ length: 3 }, () => makeRawBlob(1000));
    for (const blob of blobs) {
      upstream.addBlob(blob);
      upstream.setFault(blob.digest, { type: 'gate', beforeBytes: 10, release: gate });
    }
    const url = cache.url;
    const running = await Promise.all(blobs.slice(0, 2).map((blob) => fetch(`${url}/v2/${REPO}/blobs/${blob.digest}`)));
    const third = await fetch(`${url}/v2/${REPO}/blobs/${blobs[2]!.digest}`);
    assert.equal(third.status, 503);
    assert.ok(Number(third.headers.get('retry-after')) > 0);
    release();
    for (const response of running) assert.equal(Buffer.from(await response.arrayBuffer()).length, 1000);
    await waitUntil(async () => (await metricValue(url, 'pullthrough_fills_in_flight')) === 0, 'the fills to end');
    upstream.setFault(blobs[2]!.digest, undefined);
    assert.equal((await fetch(`${url}/v2/${REPO}/blobs/${blobs[2]!.digest}`)).status, 200, 'room again once they ended');
  });

  it('keeps half of cache.maxConcurrentFills for clients: prefetch starts no fill past it', async () => {
    const image = makeImage({ layerSizes: [1000, 1000, 1000, 1000] });
    upstream.addImage('library/busy', 'v1', image);
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    for (const blob of blobsOf(image)) upstream.setFault(blob.digest, { type: 'gate', beforeBytes: 10, release: gate });
    cache = await startPullthrough({ upstreams: [{ host: 'docker.io', url: upstream.url, default: true }], cache: { prefetchBlobs: 3, maxConcurrentFills: 2 } });
    assert.equal((await fetch(`${cache.url}/v2/library/busy/manifests/v1`, { headers: { accept: OCI.manifest } })).status, 200);
    await waitUntil(async () => (await metricValue(cache!.url, 'pullthrough_prefetched_blobs_total', { result: 'skipped' })) > 0, 'prefetch to yield');
    assert.equal(await metricValue(cache.url, 'pullthrough_fills_in_flight'), 1, 'one prefetch, one slot left for a client');
    const layer = image.layers[3]!;
    const client = fetch(`${cache.url}/v2/library/busy/blobs/${layer.digest}`);
    release();
    assert.equal((await client).status, 200, 'a client still gets a fill');
    await waitUntil(async () => (await metricValue(cache!.url, 'pullthrough_fills_in_flight')) === 0, 'the fills to end');
  });

  it('prefetches no manifest of more than 128 blobs: 10,000 layers and one anonymous GET make no blob GETs', async () => {
    const image = makeImage({ layerSizes: [10] });
    const json = JSON.parse(image.bytes.toString()) as { layers: unknown[] };
    json.layers = Array.from({ length: 10_000 }, (_, i) => ({ mediaType: OCI.layer, digest: `sha256:${i.toString(16).padStart(64, '0')}`, size: 10 }));
    const bytes = Buffer.from(JSON.stringify(json));
    upstream.addManifest('library/wide', { bytes, digest: sha256(bytes), mediaType: OCI.manifest }, 'v1');
    cache = await startPullthrough({ upstreams: [{ host: 'docker.io', url: upstream.url, default: true }], cache: { prefetchBlobs: 3 } });
    const response = await fetch(`${cache.url}/v2/library/wide/manifests/v1`, { headers: { accept: OCI.manifest } });
    assert.equal(response.status, 200);
    await sleep(300);
    assert.equal(upstream.count('GET', /library\/wide\/blobs\//), 0);
    assert.equal(await metricValue(cache.url, 'pullthrough_fills_in_flight'), 0);
  });
});
