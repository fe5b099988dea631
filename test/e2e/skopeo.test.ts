import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startCountingProxy, type CountingProxy } from '../fakes/counting-proxy.js';
import { skopeoCopy } from '../helpers/clients.js';
import { startDistribution, type Distribution } from '../helpers/distribution.js';
import { blobsOf, makeImage, makeIndex, type ImageIndex, type ImageManifest } from '../helpers/images.js';
import { startPullthrough, type RunningPullthrough } from '../helpers/pullthrough.js';

function assertSameImage(files: Map<string, Buffer>, manifest: ImageManifest | ImageIndex): void {
  assert.ok(files.get('manifest.json')?.equals(manifest.bytes), 'manifest bytes are identical');
  for (const blob of blobsOf(manifest)) {
    assert.ok(files.get(blob.digest.slice('sha256:'.length))?.equals(blob.bytes), `blob ${blob.digest} is identical`);
  }
}

describe('skopeo pulls through pullthrough from a distribution registry', { timeout: 600_000 }, () => {
  let registry: Distribution;
  let proxy: CountingProxy;
  let cache: RunningPullthrough;
  let work: string;
  const multiLayer = makeImage({ layerSizes: [300_000, 1_000_000, 50_000] });
  const multiArch = makeIndex([
    makeImage({ layerSizes: [200_000, 10_000] }),
    makeImage({ layerSizes: [200_000], platform: { os: 'linux', architecture: 'arm64' } }),
  ]);
  const legacy = makeImage({ layerSizes: [100_000, 20_000], format: 'docker' });

  before(async () => {
    registry = await startDistribution();
    await registry.push('library/multi', '1.0', multiLayer);
    await registry.push('library/multiarch', '1.0', multiArch);
    await registry.push('library/legacy', '1.0', legacy);
    proxy = await startCountingProxy(registry.url);
    cache = await startPullthrough({ upstreams: [{ host: 'docker.io', url: proxy.url, default: true }] });
    work = await mkdtemp(path.join(tmpdir(), 'pullthrough-e2e-'));
  });
  after(async () => {
    await cache?.close();
    await proxy?.close();
    await registry?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  const upstreamBlobGets = () => proxy.count('GET', /\/blobs\/sha256:/);

  it('pulls a multi-layer image cold and warm with identical digests; the warm pull asks the upstream for no blob', async () => {
    const cold = await skopeoCopy(`${cache.host}/library/multi:1.0`, { tlsVerify: false });
    assertSameImage(cold.files, multiLayer);
    await cold.cleanup();
    const blobsAfterCold = upstreamBlobGets();
    assert.equal(blobsAfterCold, blobsOf(multiLayer).length, 'each blob was fetched once');

    const warm = await skopeoCopy(`${cache.host}/library/multi:1.0`, { tlsVerify: false });
    assertSameImage(warm.files, multiLayer);
    await warm.cleanup();
    assert.equal(upstreamBlobGets(), blobsAfterCold, 'zero upstream blob requests on the warm pull');
  });

  it('pulls every platform of a multi-arch index', async () => {
    const pulled = await skopeoCopy(`${cache.host}/library/multiarch:1.0`, { all: true, tlsVerify: false });
    assertSameImage(pulled.files, multiArch);
    for (const image of multiArch.images) {
      assert.ok(pulled.files.get(`${image.digest.slice(7)}.manifest.json`)?.equals(image.bytes), `platform manifest ${image.platform.architecture}`);
    }
    await pulled.cleanup();
  });

  it('pulls a docker v2 schema 2 image', async () => {
    const pulled = await skopeoCopy(`${cache.host}/library/legacy:1.0`, { tlsVerify: false });
    assertSameImage(pulled.files, legacy);
    await pulled.cleanup();
  });

  it('serves a registries.conf path-prefix mirror, TLS probe included', async () => {
    const conf = path.join(work, 'registries.conf');
    await writeFile(
      conf,
      `[[registry]]\nprefix = "docker.io"\nlocation = "docker.io"\n\n[[registry.mirror]]\nlocation = "${cache.host}/docker.io"\ninsecure = true\n`,
    );
    const pulled = await skopeoCopy('docker.io/library/multi:1.0', { registriesConf: conf });
    assertSameImage(pulled.files, multiLayer);
    await pulled.cleanup();
  });

  it('makes one upstream GET for 10 concurrent requests of an uncached blob', async () => {
    const fresh = makeImage({ layerSizes: [8_000_000] });
    await registry.push('library/fresh', '1.0', fresh);
    const layer = fresh.layers[0]!;
    const before = proxy.count('GET', new RegExp(layer.digest));
    const bodies = await Promise.all(
      Array.from({ length: 10 }, async () => Buffer.from(await (await fetch(`${cache.url}/v2/library/fresh/blobs/${layer.digest}`)).arrayBuffer())),
    );
    for (const body of bodies) assert.ok(body.equals(layer.bytes));
    assert.equal(proxy.count('GET', new RegExp(layer.digest)) - before, 1);
  });

  it('keeps serving cached images with the upstream stopped', async () => {
    await registry.stop();
    const pulled = await skopeoCopy(`${cache.host}/library/multi:1.0`, { tlsVerify: false });
    assertSameImage(pulled.files, multiLayer);
    await pulled.cleanup();
  });
});
