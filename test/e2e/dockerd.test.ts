import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startDistribution, type Distribution } from '../helpers/distribution.js';
import { startDockerd, type Dockerd } from '../helpers/dockerd.js';
import { blobsOf, makeImage, makeIndex, type ImageIndex, type ImageManifest } from '../helpers/images.js';
import { startPullthrough, type RunningPullthrough } from '../helpers/pullthrough.js';
import { rootOnlySkipReason } from '../helpers/root-only.js';
import { readShippedClientConfig } from '../helpers/shipped-config.js';

// dockerd applies registry-mirrors to Docker Hub images only, and on any mirror failure restarts
// the pull against registry-1.docker.io, which is unreachable here: a pull that succeeds came
// through pullthrough, and a mirror that fails shows as a failed pull.
describe('dockerd pulls Docker Hub images through pullthrough with the shipped daemon.json', { timeout: 600_000, skip: rootOnlySkipReason('dockerd') }, () => {
  let registry: Distribution;
  let cache: RunningPullthrough;
  let dockerd: Dockerd;
  const amd64 = makeImage({ layerSizes: [400_000, 1_500_000, 2_000], format: 'docker' });
  const list = makeIndex([amd64, makeImage({ layerSizes: [300_000], format: 'docker', platform: { os: 'linux', architecture: 'arm64' } })], 'docker');
  const oci = makeImage({ layerSizes: [200_000, 30_000] });

  before(async () => {
    registry = await startDistribution({ accessLog: true });
    await registry.push('library/pullthrough-app', '1.0', list);
    await registry.push('library/pullthrough-oci', '2.0', oci);
    cache = await startPullthrough({ upstreams: [{ host: 'docker.io', url: registry.url, default: true }], captureRequests: true });
    dockerd = await startDockerd({ daemonJson: await readShippedClientConfig('docker/daemon.json', cache.host) });
  });
  after(async () => {
    await dockerd?.stop();
    await cache?.close();
    await registry?.stop();
  });

  /** Blob GETs the upstream registry answered, from its own access log. */
  const upstreamBlobGets = () => registry.served().filter((r) => r.method === 'GET' && r.path.includes('/blobs/sha256:')).length;

  async function assertPulled(reference: string, image: ImageManifest, manifestDigest: string): Promise<void> {
    const pulled = await dockerd.inspect(reference);
    assert.equal(pulled.id, image.config.digest, 'the image ID is the seeded config digest');
    assert.ok(pulled.repoDigests.some((d) => d.endsWith(`@${manifestDigest}`)), `${pulled.repoDigests.join(', ')} names ${manifestDigest}`);
  }

  async function pullFresh(reference: string): Promise<void> {
    await dockerd.removeImage(reference);
    await dockerd.pull(reference);
  }

  it('pulls a multi-arch manifest list and an OCI image cold, by Docker Hub short names', async () => {
    await dockerd.pull('pullthrough-app:1.0');
    await assertPulled('pullthrough-app:1.0', amd64, list.digest);
    await dockerd.pull('pullthrough-oci:2.0');
    await assertPulled('pullthrough-oci:2.0', oci, oci.digest);

    const served = cache.requests.filter((r) => r.kind === 'manifest' || r.kind === 'blob');
    assert.ok(served.some((r) => r.method === 'HEAD' && r.path === '/v2/library/pullthrough-app/manifests/1.0'), 'dockerd asked the mirror for the tag, with library/');
    for (const r of served) assert.equal(r.status, 200, `${r.method} ${r.path}`);
    assert.equal(upstreamBlobGets(), blobsOf(amd64).length + blobsOf(oci).length, 'each blob of the pulled platforms came from the upstream once');
  });

  it('fails the pull of a name the upstream does not have: nothing but the mirror can answer here', async () => {
    await assert.rejects(dockerd.pull('pullthrough-missing:1.0'));
    const asked = cache.requests.filter((r) => r.path.startsWith('/v2/library/pullthrough-missing/manifests/1.0'));
    assert.ok(asked.length > 0 && asked.every((r) => r.status === 404), 'the mirror was asked and answered 404');
  });

  it('pulls again from the cache alone once dockerd has removed the image', async () => {
    const upstreamBefore = upstreamBlobGets();
    const servedBefore = cache.requests.length;
    await pullFresh('pullthrough-app:1.0');
    await assertPulled('pullthrough-app:1.0', amd64, list.digest);
    const blobs = cache.requests.slice(servedBefore).filter((r) => r.kind === 'blob' && r.method === 'GET');
    assert.equal(blobs.length, blobsOf(amd64).length, 'dockerd fetched every blob again, from the mirror');
    assert.ok(blobs.every((r) => r.source === 'cache'), 'every blob came from the cache');
    assert.equal(upstreamBlobGets(), upstreamBefore, 'zero upstream blob requests on the warm pull');
  });

  it('pulls the cached image with the upstream stopped', async () => {
    await registry.stop();
    await pullFresh('pullthrough-app:1.0');
    await assertPulled('pullthrough-app:1.0', amd64, list.digest);
    await pullFresh('pullthrough-oci:2.0');
    await assertPulled('pullthrough-oci:2.0', oci, oci.digest);
  });
});
