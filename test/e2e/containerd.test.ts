import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startCountingProxy, type CountingProxy } from '../fakes/counting-proxy.js';
import { startContainerd, type Containerd } from '../helpers/clients.js';
import { startDistribution, type Distribution } from '../helpers/distribution.js';
import { blobsOf, makeImage, makeIndex, type ImageIndex, type ImageManifest } from '../helpers/images.js';
import { startPullthrough, type RunningPullthrough } from '../helpers/pullthrough.js';

describe("containerd's ctr pulls through pullthrough as a Kubernetes node would", { timeout: 600_000 }, () => {
  let registry: Distribution;
  let proxy: CountingProxy;
  let cache: RunningPullthrough;
  let containerd: Containerd;
  let amd64: ImageManifest;
  let index: ImageIndex;
  let single: ImageManifest;

  before(async () => {
    registry = await startDistribution();
    amd64 = makeImage({ layerSizes: [500_000, 2_000_000, 1_000] });
    index = makeIndex([amd64, makeImage({ layerSizes: [300_000], platform: { os: 'linux', architecture: 'arm64' } })]);
    single = makeImage({ layerSizes: [100_000], format: 'docker' });
    await registry.push('library/app', '1.0', index);
    await registry.push('library/legacy', '2.0', single);
    proxy = await startCountingProxy(registry.url);
    cache = await startPullthrough({ upstreams: [{ host: 'docker.io', url: proxy.url, default: true }], captureRequests: true });
    containerd = await startContainerd();
  });
  after(async () => {
    await containerd?.stop();
    await cache?.close();
    await proxy?.close();
    await registry?.stop();
  });

  it('pulls and unpacks a multi-arch image: HEAD of the tag first, ns=docker.io on every request', async () => {
    await containerd.pull('docker.io/library/app:1.0', { registry: 'docker.io', mirror: cache.host });
    const images = await containerd.ctr(['images', 'ls']);
    assert.match(images, new RegExp(`docker.io/library/app:1.0\\s+\\S+\\s+${index.digest}`));
    const content = await containerd.ctr(['content', 'ls', '-q']);
    for (const blob of [amd64.config, ...amd64.layers]) assert.ok(content.includes(blob.digest), `containerd holds ${blob.digest}`);

    const registryRequests = cache.requests.filter((r) => r.kind === 'manifest' || r.kind === 'blob');
    assert.equal(registryRequests[0]?.method, 'HEAD');
    assert.match(registryRequests[0]?.path ?? '', /^\/v2\/library\/app\/manifests\/1\.0\?ns=docker\.io$/);
    for (const r of registryRequests) {
      assert.match(r.path, /\?ns=docker\.io$/, `${r.method} ${r.path}`);
      assert.equal(r.status, 200, `${r.method} ${r.path}`);
    }
    assert.ok(registryRequests.some((r) => r.method === 'GET' && r.path.includes(`/manifests/${index.digest}`)), 'the index is fetched by digest');
    assert.ok(registryRequests.some((r) => r.method === 'GET' && r.path.includes(`/manifests/${amd64.digest}`)), 'the platform manifest is fetched by digest');
  });

  it('pulls again from the cache alone once containerd has forgotten the image', async () => {
    const blobGets = proxy.count('GET', /\/blobs\//);
    await containerd.ctr(['images', 'rm', '--sync', 'docker.io/library/app:1.0']);
    const held = (await containerd.ctr(['content', 'ls', '-q'])).split('\n').filter((d) => d.startsWith('sha256:'));
    if (held.length > 0) await containerd.ctr(['content', 'rm', ...held]);
    assert.equal((await containerd.ctr(['content', 'ls', '-q'])).trim(), '', 'containerd holds nothing');
    const servedBefore = cache.requests.filter((r) => r.kind === 'blob' && r.method === 'GET').length;
    await containerd.pull('docker.io/library/app:1.0', { registry: 'docker.io', mirror: cache.host });
    const served = cache.requests.filter((r) => r.kind === 'blob' && r.method === 'GET').slice(servedBefore);
    assert.equal(served.length, 1 + amd64.layers.length, 'containerd fetched every blob again, from the mirror');
    assert.ok(served.every((r) => r.source === 'cache'));
    assert.equal(proxy.count('GET', /\/blobs\//), blobGets, 'no blob came from the upstream');
  });

  it('pulls a docker v2s2 image named the way ctr names it, without library/', async () => {
    await containerd.pull('docker.io/legacy:2.0', { registry: 'docker.io', mirror: cache.host });
    const content = await containerd.ctr(['content', 'ls', '-q']);
    for (const blob of blobsOf(single)) assert.ok(content.includes(blob.digest));
    assert.ok(cache.requests.some((r) => r.path.startsWith('/v2/legacy/manifests/2.0?ns=docker.io')), 'ctr sent the name as written');
  });
});
