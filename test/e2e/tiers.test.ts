import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, describe, it } from 'node:test';
import { skopeoCopy } from '../helpers/clients.js';
import { startDistribution, type Distribution } from '../helpers/distribution.js';
import { blobsOf, makeImage, type ImageManifest } from '../helpers/images.js';
import { freePort, startDaemon, waitUntil, type Daemon } from '../helpers/processes.js';
import { metricValue } from '../helpers/pullthrough.js';

/** One access-log line of a pullthrough process. */
interface AccessLine {
  readonly method: string;
  readonly path: string;
  readonly status: number;
  readonly bytes: number;
}

interface Instance {
  readonly url: string;
  readonly host: string;
  readonly daemon: Daemon;
  readonly requests: AccessLine[];
}

/** Runs the built server (`npm run build` first) with this YAML, and keeps its access log. */
async function startBuilt(dir: string, name: string, upstreamsYaml: string): Promise<Instance> {
  const port = await freePort();
  const config = path.join(dir, `${name}.yaml`);
  await writeFile(config, `listen: 127.0.0.1:${port}\nlogLevel: info\nstorage: { root: ${path.join(dir, name)} }\nupstreams:\n${upstreamsYaml}`);
  const daemon = startDaemon(process.execPath, ['dist/main.js', 'serve', '--config', config]);
  const requests: AccessLine[] = [];
  for (const stream of [daemon.child.stdout, daemon.child.stderr]) {
    if (!stream) continue;
    createInterface({ input: stream }).on('line', (line) => {
      try {
        const entry = JSON.parse(line) as AccessLine & { msg?: string };
        if (entry.msg === 'request') requests.push(entry);
      } catch {
        // Not a log line.
      }
    });
  }
  const url = `http://127.0.0.1:${port}`;
  try {
    await waitUntil(async () => (await fetch(`${url}/healthz`)).ok, `${name} pullthrough to start`);
  } catch (err) {
    await daemon.stop();
    throw new Error(`${(err as Error).message}\n${daemon.output()}`);
  }
  return { url, host: `127.0.0.1:${port}`, daemon, requests };
}

function assertSameImage(files: Map<string, Buffer>, image: ImageManifest): void {
  assert.ok(files.get('manifest.json')?.equals(image.bytes), 'manifest bytes are identical');
  for (const blob of blobsOf(image)) assert.ok(files.get(blob.digest.slice('sha256:'.length))?.equals(blob.bytes), `blob ${blob.digest} is identical`);
}

describe('tiers: node pullthrough → regional pullthrough → distribution', { timeout: 300_000 }, () => {
  let registry: Distribution;
  let regional: Instance;
  let node: Instance;
  let dir: string;
  const image = makeImage({ layerSizes: [400_000, 1_200_000] });
  const fresh = makeImage({ layerSizes: [300_000] });

  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'pullthrough-tiers-'));
    registry = await startDistribution({ accessLog: true });
    await registry.push('library/app', '1.0', image);
    regional = await startBuilt(dir, 'regional', `  - { host: docker.io, url: "${registry.url}", default: true }\n`);
    // The regional one fails fast once stopped: one refused connection opens the node's breaker for it.
    node = await startBuilt(dir, 'node', `  - { host: docker.io, url: "${registry.url}", default: true, via: "${regional.url}", breaker: { failures: 1, openFor: 1m } }\n`);
  });
  after(async () => {
    await node?.daemon.stop();
    await regional?.daemon.stop();
    await registry?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('pulls through the regional cache, ns= kept, the bytes identical', async () => {
    const pulled = await skopeoCopy(`${node.host}/library/app:1.0`, { tlsVerify: false });
    try {
      assertSameImage(pulled.files, image);
    } finally {
      await pulled.cleanup();
    }
    for (const blob of blobsOf(image)) {
      const served = regional.requests.filter((r) => r.method === 'GET' && r.path.startsWith(`/v2/library/app/blobs/${blob.digest}`) && r.status === 200);
      assert.equal(served.length, 1, `the regional cache served ${blob.digest} once`);
      assert.equal(new URL(served[0]!.path, regional.url).searchParams.get('ns'), 'docker.io');
      assert.equal(served[0]!.bytes, blob.bytes.length);
    }
    assert.equal(await metricValue(node.url, 'pullthrough_upstream_requests_total', { upstream: 'docker.io' }), 0, 'the node did not ask the upstream itself');
    assert.ok((await metricValue(node.url, 'pullthrough_upstream_requests_total', { upstream: 'docker.io+via' })) > 0);
    const upstreamBlobGets = registry.served().filter((r) => r.method === 'GET' && r.path.includes('/blobs/sha256:'));
    assert.equal(upstreamBlobGets.length, blobsOf(image).length, 'the upstream sent each blob once, to the regional cache');
  });

  it('goes to the upstream directly once the regional cache is stopped', async () => {
    await regional.daemon.stop();
    await registry.push('library/fresh', '1.0', fresh);
    const before = registry.served().length;
    const pulled = await skopeoCopy(`${node.host}/library/fresh:1.0`, { tlsVerify: false });
    try {
      assertSameImage(pulled.files, fresh);
    } finally {
      await pulled.cleanup();
    }
    const direct = registry.served().slice(before).filter((r) => r.method === 'GET' && r.path.includes('/blobs/sha256:'));
    assert.equal(direct.length, blobsOf(fresh).length, 'each blob of the new image came from the upstream directly');
    assert.ok((await metricValue(node.url, 'pullthrough_via_fallbacks_total', { upstream: 'docker.io' })) >= blobsOf(fresh).length);
    // What the node cached through the regional one is still served without either.
    const again = await skopeoCopy(`${node.host}/library/app:1.0`, { tlsVerify: false });
    try {
      assertSameImage(again.files, image);
    } finally {
      await again.cleanup();
    }
  });
});
