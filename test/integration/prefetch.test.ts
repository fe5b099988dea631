import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import { startFakeUpstream, type FakeUpstream } from '../fakes/fake-upstream.js';
import { blobsOf, makeImage, OCI } from '../helpers/images.js';
import { metricValue, startPullthrough, type RunningPullthrough } from '../helpers/pullthrough.js';
import { waitUntil } from '../helpers/processes.js';

const REPO = 'library/app';
const accept = { accept: [OCI.manifest, OCI.index].join(', ') };

describe('blob prefetch (cache.prefetchBlobs)', () => {
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

  const prefetched = (url: string) => metricValue(url, 'pullthrough_prefetched_blobs_total', { result: 'committed' });

  it('fills an image’s blobs once its manifest came from upstream; the client then reads them from disk', async () => {
    const image = makeImage({ layerSizes: [200_000, 300_000, 400_000, 500_000] });
    upstream.addImage(REPO, 'v1', image);
    cache = await startPullthrough({ upstreams: [{ host: 'docker.io', url: upstream.url, default: true }], cache: { prefetchBlobs: 2 } });
    const url = cache.url;
    assert.equal((await fetch(`${url}/v2/${REPO}/manifests/v1`, { headers: accept })).status, 200);
    await waitUntil(async () => (await prefetched(url)) === 5, 'config and four layers prefetched');
    for (const blob of blobsOf(image)) {
      const response = await fetch(`${url}/v2/${REPO}/blobs/${blob.digest}`);
      assert.ok(Buffer.from(await response.arrayBuffer()).equals(blob.bytes));
      assert.equal(upstream.count('GET', `/v2/${REPO}/blobs/${blob.digest}`), 1, 'fetched once, ahead of the client');
    }
    assert.equal(await metricValue(url, 'pullthrough_cache_lookups_total', { kind: 'blob', result: 'hit' }), 5);
  });

  it('prefetches nothing when off, the default', async () => {
    const plain = makeImage({ layerSizes: [1000] });
    upstream.addImage('library/plain', 'v1', plain);
    cache = await startPullthrough({ upstreams: [{ host: 'docker.io', url: upstream.url, default: true }] });
    assert.equal((await fetch(`${cache.url}/v2/library/plain/manifests/v1`, { headers: accept })).status, 200);
    // A prefetch would be running by now: fills start before the manifest is answered.
    assert.equal(await metricValue(cache.url, 'pullthrough_fills_in_flight'), 0);
    assert.equal(upstream.count('GET', /library\/plain\/blobs\//), 0);
  });

  /** An image whose blobs the upstream holds after their first 100 bytes until `release`, pulled by manifest through a cache prefetching one at a time. */
  async function gatedPull(repository: string, layerSizes: number[]): Promise<{ release: () => void }> {
    const image = makeImage({ layerSizes });
    upstream.addImage(repository, 'v1', image);
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    for (const blob of blobsOf(image)) upstream.setFault(blob.digest, { type: 'gate', beforeBytes: 100, release: gate });
    cache = await startPullthrough({ upstreams: [{ host: 'docker.io', url: upstream.url, default: true }], cache: { prefetchBlobs: 1 } });
    assert.equal((await fetch(`${cache.url}/v2/${repository}/manifests/v1`, { headers: accept })).status, 200);
    return { release };
  }

  it('starts its fills before the manifest is answered', async () => {
    const { release } = await gatedPull('library/eager', [1000, 2000]);
    assert.equal(await metricValue(cache!.url, 'pullthrough_fills_in_flight'), 1, 'one at a time, as configured');
    release();
    await waitUntil(async () => (await metricValue(cache!.url, 'pullthrough_prefetched_blobs_total', { result: 'committed' })) === 3, 'the rest, one after another');
  });

  it('starts no more of its queue once the server is shutting down', async () => {
    const { release } = await gatedPull('library/late', [1000, 2000, 3000]);
    const closing = cache!.close();
    cache = undefined;
    release();
    await closing;
    assert.equal(upstream.count('GET', /library\/late\/blobs\//), 1, 'the running fill finished; the queue stopped');
  });
});
