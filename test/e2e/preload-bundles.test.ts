import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createWriteStream } from 'node:fs';
import { finished } from 'node:stream/promises';
import { gunzipSync } from 'node:zlib';
import { TarWriter } from '../../src/bundle/tar.js';
import { createMetadataIndex } from '../../src/storage/metadata-index.js';
import { runCli } from '../helpers/cli.js';
import { skopeoCopy, readDirImage } from '../helpers/clients.js';
import { startDistribution, type Distribution } from '../helpers/distribution.js';
import { blobsOf, makeImage, makeIndex, type ImageIndex, type ImageManifest } from '../helpers/images.js';
import { runCommand } from '../helpers/processes.js';
import { startPullthrough } from '../helpers/pullthrough.js';

function assertSameImage(files: Map<string, Buffer>, manifest: ImageManifest | ImageIndex): void {
  assert.ok(files.get('manifest.json')?.equals(manifest.bytes), 'manifest bytes are identical');
  for (const blob of blobsOf(manifest)) assert.ok(files.get(blob.digest.slice(7))?.equals(blob.bytes), `blob ${blob.digest} is identical`);
}

describe('preload, export and import for offline sites', { timeout: 900_000 }, () => {
  let registry: Distribution;
  let work: string;
  const app = makeIndex([makeImage({ layerSizes: [400_000, 30_000] }), makeImage({ layerSizes: [200_000], platform: { os: 'linux', architecture: 'arm64' } })]);
  const tool = makeImage({ layerSizes: [150_000] });

  async function writeConfig(name: string, upstreamUrl: string, extra = ''): Promise<{ file: string; root: string }> {
    const root = path.join(work, name);
    const file = path.join(work, `${name}.yaml`);
    await writeFile(file, `listen: 127.0.0.1:9\nlogLevel: warn\nstorage: { root: ${root} }\n${extra}upstreams:\n  - { host: docker.io, url: "${upstreamUrl}", default: true }\n`);
    return { file, root };
  }

  before(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'pullthrough-bundles-'));
    registry = await startDistribution();
    await registry.push('library/app', '1.0', app);
    await registry.push('library/tool', '2.0', tool);
  });
  after(async () => {
    await registry?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('exports an OCI layout bundle that skopeo reads and that an offline instance imports and serves', async () => {
    const online = await writeConfig('online', registry.url);
    const bundle = path.join(work, 'bundle.tar');
    const exported = await runCli(['export', '--config', online.file, '--all-platforms', '-o', bundle, 'docker.io/library/app:1.0', 'library/tool:2.0']);
    assert.equal(exported.code, 0, exported.stdout + exported.stderr);
    assert.match(exported.stdout, /wrote .*bundle\.tar: 2 images/);

    const viaSkopeo = path.join(work, 'skopeo-from-bundle');
    await runCommand('skopeo', ['--policy', await policy(), 'copy', '--all', `oci-archive:${bundle}:docker.io/library/app:1.0`, `dir:${viaSkopeo}`]);
    assertSameImage(await readDirImage(viaSkopeo), app);

    const offline = await writeConfig('offline-site', 'http://127.0.0.1:9', 'offline: true\n');
    const imported = await runCli(['import', '--config', offline.file, bundle]);
    assert.equal(imported.code, 0, imported.stdout + imported.stderr);
    assert.match(imported.stdout, /imported 2 images/);

    const site = await startPullthrough({ upstreams: [{ host: 'docker.io', url: 'http://127.0.0.1:9', default: true }], storageRoot: offline.root, offline: true });
    try {
      const pulledApp = await skopeoCopy(`${site.host}/library/app:1.0`, { all: true, tlsVerify: false });
      assertSameImage(pulledApp.files, app);
      await pulledApp.cleanup();
      const pulledTool = await skopeoCopy(`${site.host}/library/tool:2.0`, { tlsVerify: false });
      assertSameImage(pulledTool.files, tool);
      await pulledTool.cleanup();
    } finally {
      await site.close({ keepStorage: true });
    }
    const index = createMetadataIndex({ path: path.join(offline.root, 'index.db') }, { now: Date.now });
    assert.ok(index.isPinned({ upstream: 'docker.io', repository: 'library/app' }, '1.0'), 'imported images are pinned');
    index.close();
  });

  it('rejects a tampered bundle with a clear error and imports nothing', async () => {
    const bundle = await readFile(path.join(work, 'bundle.tar'));
    const layer = tool.layers[0]!.bytes;
    const at = bundle.indexOf(layer.subarray(1000, 1064));
    assert.ok(at > 0, 'found the layer in the bundle');
    bundle[at] = (bundle[at] ?? 0) ^ 0xff;
    const tampered = path.join(work, 'tampered.tar');
    await writeFile(tampered, bundle);
    const target = await writeConfig('tampered-site', 'http://127.0.0.1:9');
    const result = await runCli(['import', '--config', target.file, tampered]);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /tampered with: blobs\/sha256\/[0-9a-f]{64} does not match its digest; nothing was imported/);
    const blobs = await readdir(path.join(target.root, 'blobs'), { recursive: true }).catch(() => []);
    assert.equal(blobs.filter((f) => String(f).split('/').length === 3).length, 0, 'no blob committed');
    assert.deepEqual(await readdir(path.join(target.root, 'tmp')), [], 'staged files removed');
  });

  it('imports a docker save archive, checking layers against their diff_ids', async () => {
    const image = makeImage({ layerSizes: [80_000, 5_000], format: 'docker' });
    const layers = image.layers.map((l) => gunzip(l.bytes));
    const archive = async (file: string, layerBytes: Buffer[]) => {
      const out = createWriteStream(file);
      const tar = new TarWriter(out);
      const configName = `${image.config.digest.slice(7)}.json`;
      for (const [i, bytes] of layerBytes.entries()) await tar.addBuffer(`layer${i}/layer.tar`, bytes);
      await tar.addBuffer(configName, image.config.bytes);
      await tar.addBuffer('manifest.json', Buffer.from(JSON.stringify([{ Config: configName, RepoTags: ['saved/app:3.0'], Layers: layerBytes.map((_, i) => `layer${i}/layer.tar`) }])));
      await tar.finish();
      out.end();
      await finished(out);
    };
    const good = path.join(work, 'saved.tar');
    await archive(good, layers);
    const target = await writeConfig('saved-site', 'http://127.0.0.1:9');
    const result = await runCli(['import', '--config', target.file, good]);
    assert.equal(result.code, 0, result.stdout + result.stderr);
    assert.match(result.stdout, /imported docker\.io\/saved\/app:3\.0/);
    const site = await startPullthrough({ upstreams: [{ host: 'docker.io', url: 'http://127.0.0.1:9', default: true }], storageRoot: target.root, offline: true });
    try {
      const pulled = await skopeoCopy(`${site.host}/saved/app:3.0`, { tlsVerify: false });
      for (const bytes of layers) assert.ok(pulled.files.get(sha256(bytes))?.equals(bytes), 'uncompressed layer served as saved');
      assert.ok(pulled.files.get(image.config.digest.slice(7))?.equals(image.config.bytes));
      await pulled.cleanup();
    } finally {
      await site.close({ keepStorage: true });
    }

    const bad = path.join(work, 'saved-bad.tar');
    const changed = Buffer.from(layers[0]!);
    changed[600] = (changed[600] ?? 0) ^ 0xff;
    await archive(bad, [changed, layers[1]!]);
    const rejected = await runCli(['import', '--config', (await writeConfig('saved-bad-site', 'http://127.0.0.1:9')).file, bad]);
    assert.equal(rejected.code, 1);
    assert.match(rejected.stderr, /do not hash to the diff_ids/);
  });

  it('preloads images, reports a failure without stopping, pins, and serves them with the upstream gone', async () => {
    const site = await writeConfig('preloaded', registry.url);
    const preload = await runCli(['preload', '--config', site.file, '--platform', 'linux/arm64', 'docker.io/library/app:1.0', 'library/tool:2.0', 'library/missing:1']);
    assert.equal(preload.code, 1, 'one image failed');
    assert.match(preload.stdout, /preloaded 2 of 3 images .* pinned/);
    assert.match(preload.stdout, /failed: docker\.io\/library\/missing:1: .*MANIFEST_UNKNOWN/);
    assert.match(preload.stderr, /docker\.io\/library\/tool:2\.0 ok/);
    const index = createMetadataIndex({ path: path.join(site.root, 'index.db') }, { now: Date.now });
    assert.ok(index.isPinned({ upstream: 'docker.io', repository: 'library/tool' }, '2.0'));
    index.close();

    await registry.stop();
    const server = await startPullthrough({ upstreams: [{ host: 'docker.io', url: registry.url, default: true }], storageRoot: site.root });
    try {
      const pulled = await skopeoCopy(`${server.host}/library/tool:2.0`, { tlsVerify: false });
      assertSameImage(pulled.files, tool);
      await pulled.cleanup();
      const arm = app.images[1]!;
      const pulledArm = await skopeoCopy(`${server.host}/library/app@${arm.digest}`, { tlsVerify: false });
      assertSameImage(pulledArm.files, arm);
      await pulledArm.cleanup();
    } finally {
      await server.close({ keepStorage: true });
    }
  });

  async function policy(): Promise<string> {
    const file = path.join(work, 'policy.json');
    await writeFile(file, JSON.stringify({ default: [{ type: 'insecureAcceptAnything' }] }));
    return file;
  }
});

function gunzip(bytes: Buffer): Buffer {
  return gunzipSync(bytes);
}

function sha256(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}
