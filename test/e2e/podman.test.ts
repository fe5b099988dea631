import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startDistribution, type Distribution } from '../helpers/distribution.js';
import { blobsOf, makeImage, makeIndex, type ImageManifest } from '../helpers/images.js';
import { createPodman, type Podman, type PodmanImage } from '../helpers/podman.js';
import { startPullthrough, type RunningPullthrough } from '../helpers/pullthrough.js';
import { rootOnlySkipReason } from '../helpers/root-only.js';
import { readShippedClientConfig } from '../helpers/shipped-config.js';

// registries.conf's mirror is tried first; if it fails, podman goes to `location` (docker.io),
// which is unreachable here: a pull that succeeds came through pullthrough.
describe('podman pulls through pullthrough with the shipped registries.conf', { timeout: 600_000, skip: rootOnlySkipReason('podman') }, () => {
  let registry: Distribution;
  let cache: RunningPullthrough;
  let podman: Podman;
  const amd64 = makeImage({ layerSizes: [400_000, 1_500_000, 2_000] });
  const index = makeIndex([amd64, makeImage({ layerSizes: [300_000], platform: { os: 'linux', architecture: 'arm64' } })]);
  const legacy = makeImage({ layerSizes: [200_000, 30_000], format: 'docker' });

  before(async () => {
    registry = await startDistribution({ accessLog: true });
    await registry.push('library/pullthrough-app', '1.0', index);
    await registry.push('library/pullthrough-legacy', '2.0', legacy);
    cache = await startPullthrough({ upstreams: [{ host: 'docker.io', url: registry.url, default: true }], captureRequests: true });
    podman = await createPodman({ registriesConf: await readShippedClientConfig('containers/registries.conf', cache.host) });
  });
  after(async () => {
    await podman?.cleanup();
    await cache?.close();
    await registry?.stop();
  });

  /** Blob GETs the upstream registry answered, from its own access log. */
  const upstreamBlobGets = () => registry.served().filter((r) => r.method === 'GET' && r.path.includes('/blobs/sha256:')).length;

  function assertPulled(pulled: PodmanImage, name: string, image: ImageManifest, manifestDigest: string): void {
    assert.equal(`sha256:${pulled.id}`, image.config.digest, 'the image ID is the seeded config digest');
    assert.equal(pulled.digest, manifestDigest, 'podman recorded the digest the tag names');
    assert.ok(pulled.repoDigests.includes(`docker.io/library/${name}@${manifestDigest}`), `${pulled.repoDigests.join(', ')} names ${manifestDigest}`);
  }

  it('pulls a multi-arch OCI index and a docker v2s2 image cold, through the path-prefix mirror', async () => {
    assertPulled(await podman.pull('docker.io/library/pullthrough-app:1.0'), 'pullthrough-app', amd64, index.digest);
    assertPulled(await podman.pull('docker.io/library/pullthrough-legacy:2.0'), 'pullthrough-legacy', legacy, legacy.digest);

    const served = cache.requests.filter((r) => r.kind === 'manifest' || r.kind === 'blob');
    assert.ok(served.some((r) => r.method === 'GET' && r.path === '/v2/docker.io/library/pullthrough-app/manifests/1.0'), 'podman asked for the tag under the docker.io/ prefix');
    for (const r of served) assert.equal(r.status, 200, `${r.method} ${r.path}`);
    assert.equal(upstreamBlobGets(), blobsOf(amd64).length + blobsOf(legacy).length, 'each blob of the pulled platforms came from the upstream once');
  });

  it('fails the pull of a name the upstream does not have: nothing but the mirror can answer here', async () => {
    // podman's message carries the mirror's answer before its fallback's.
    await assert.rejects(podman.pull('docker.io/library/pullthrough-missing:1.0'), /Mirrors also failed: .*manifest unknown/);
  });

  it('pulls again into an empty store from the cache alone', async () => {
    const upstreamBefore = upstreamBlobGets();
    const servedBefore = cache.requests.length;
    assertPulled(await podman.pull('docker.io/library/pullthrough-app:1.0'), 'pullthrough-app', amd64, index.digest);
    const blobs = cache.requests.slice(servedBefore).filter((r) => r.kind === 'blob' && r.method === 'GET');
    assert.equal(blobs.length, blobsOf(amd64).length, 'podman fetched every blob again, from the mirror');
    assert.ok(blobs.every((r) => r.source === 'cache'), 'every blob came from the cache');
    assert.equal(upstreamBlobGets(), upstreamBefore, 'zero upstream blob requests on the warm pull');
  });

  it('pulls the cached images with the upstream stopped', async () => {
    await registry.stop();
    assertPulled(await podman.pull('docker.io/library/pullthrough-app:1.0'), 'pullthrough-app', amd64, index.digest);
    assertPulled(await podman.pull('docker.io/library/pullthrough-legacy:2.0'), 'pullthrough-legacy', legacy, legacy.digest);
  });
});
