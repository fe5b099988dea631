import assert from 'node:assert/strict';
import { once } from 'node:events';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, readdir, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import request from 'supertest';
import { createMetadataIndex } from '../../src/storage/metadata-index.js';
import { startFakeUpstream, type FakeUpstream } from '../fakes/fake-upstream.js';
import { runCli } from '../helpers/cli.js';
import { blobsOf, makeImage, makeRawBlob } from '../helpers/images.js';
import { freePort, startDaemon, waitUntil } from '../helpers/processes.js';
import { metricValue, startPullthrough } from '../helpers/pullthrough.js';

const run = promisify(execFile);

describe('storage lifecycle: CLI, crashes and a full disk', { timeout: 300_000 }, () => {
  let upstream: FakeUpstream;
  let work: string;
  const image = makeImage({ layerSizes: [40_000, 10_000] });

  async function configFor(name: string, extra = ''): Promise<{ file: string; root: string }> {
    const root = path.join(work, name);
    const file = path.join(work, `${name}.yaml`);
    await writeFile(file, `listen: 127.0.0.1:9\nlogLevel: warn\nstorage: { root: ${root} }\n${extra}upstreams:\n  - { host: docker.io, url: "${upstream.url}", default: true }\n`);
    return { file, root };
  }

  before(async () => {
    upstream = await startFakeUpstream();
    upstream.addImage('library/app', '1.0', image);
    work = await mkdtemp(path.join(tmpdir(), 'pullthrough-lifecycle-'));
  });
  after(async () => {
    await upstream.close();
    await rm(work, { recursive: true, force: true });
  });

  it('ls, stats, pin, unpin, verify --repair, rm and gc from the command line', async () => {
    const { file, root } = await configFor('cli');
    const server = await startPullthrough({ upstreams: [{ host: 'docker.io', url: upstream.url, default: true }], storageRoot: root });
    await request(server.url).get('/v2/library/app/manifests/1.0').expect(200);
    for (const blob of blobsOf(image)) await request(server.url).get(`/v2/library/app/blobs/${blob.digest}`).expect(200);
    await server.close({ keepStorage: true });

    const ls = await runCli(['ls', '--config', file]);
    assert.equal(ls.code, 0, ls.stderr);
    assert.match(ls.stdout, /docker\.io\/library\/app:1\.0\s+\d+\.\d KiB\s+1\s/);
    assert.match((await runCli(['stats', '--config', file])).stdout, /in 4 objects; 1 tags, 0 pinned/);
    assert.match((await runCli(['pin', '--config', file, 'library/app:1.0'])).stdout, /pinned docker\.io\/library\/app:1\.0/);
    assert.match((await runCli(['ls', '--config', file])).stdout, /yes\n$/);
    assert.equal((await runCli(['unpin', '--config', file, 'library/app:1.0'])).code, 0);
    assert.equal((await runCli(['unpin', '--config', file, 'library/app:1.0'])).code, 1);

    assert.equal((await runCli(['verify', '--config', file])).code, 0);
    const layer = image.layers[0]!;
    const blobFile = path.join(root, 'blobs', 'sha256', layer.digest.slice(7, 9), layer.digest.slice(7));
    const bytes = await readFile(blobFile);
    bytes[5] = (bytes[5] ?? 0) ^ 0x80;
    await writeFile(blobFile, bytes);
    const verify = await runCli(['verify', '--config', file]);
    assert.equal(verify.code, 1);
    assert.match(verify.stdout, new RegExp(`corrupt: ${layer.digest}`));
    assert.match(verify.stdout, /run with --repair/);
    const repaired = await runCli(['verify', '--config', file, '--repair']);
    assert.equal(repaired.code, 1, 'damage was found, so the exit code says so');
    assert.match(repaired.stdout, /dropped, they will be fetched again/);
    assert.equal((await runCli(['verify', '--config', file])).code, 0);

    const removed = await runCli(['rm', '--config', file, 'library/app:1.0']);
    assert.match(removed.stdout, /removed docker\.io\/library\/app:1\.0: 3 objects/);
    assert.match((await runCli(['stats', '--config', file])).stdout, /in 0 objects; 0 tags/);
    // Left behind by hand or a crash, long ago: a file the index does not know and a dead temp file.
    const strayDigest = 'ab'.repeat(32);
    const stray = path.join(root, 'blobs', 'sha256', strayDigest.slice(0, 2), strayDigest);
    await mkdir(path.dirname(stray), { recursive: true });
    await writeFile(stray, 'stray');
    const deadTemp = path.join(root, 'tmp', 'dead-fill');
    await writeFile(deadTemp, 'partial');
    const longAgo = new Date(Date.now() - 48 * 3_600_000);
    await utimes(stray, longAgo, longAgo);
    await utimes(deadTemp, longAgo, longAgo);
    const gc = await runCli(['gc', '--config', file]);
    assert.equal(gc.code, 0, gc.stderr);
    assert.match(gc.stdout, /removed 0 unreferenced blobs, 1 stray files, 1 dead temp files/);
    assert.equal(existsSync(stray), false);
    assert.equal(existsSync(deadTemp), false);
  });

  it('kill -9 in the middle of a fill leaves nothing partial; a restart serves a clean pull', async () => {
    const blob = makeRawBlob(3 * 1024 * 1024);
    upstream.addBlob(blob);
    upstream.setFault(blob.digest, { type: 'slow', chunkBytes: 128 * 1024, delayMs: 50 });
    const port = await freePort();
    const { root } = await configFor('crash');
    const config = path.join(work, 'crash-serve.yaml');
    await writeFile(config, `listen: 127.0.0.1:${port}\nlogLevel: warn\nstorage: { root: ${root} }\nupstreams:\n  - { host: docker.io, url: "${upstream.url}", default: true }\n`);
    const server = startDaemon(process.execPath, ['--import', 'tsx', 'src/main.ts', 'serve', '--config', config]);
    await waitUntil(async () => (await fetch(`http://127.0.0.1:${port}/healthz`)).ok, 'the server');
    const response = await fetch(`http://127.0.0.1:${port}/v2/library/app/blobs/${blob.digest}`);
    const reader = response.body!.getReader();
    let received = 0;
    while (received < 512 * 1024) received += (await reader.read()).value?.length ?? 0;
    assert.ok((await readdir(path.join(root, 'tmp'))).length > 0, 'a fill is on disk');
    server.child.kill('SIGKILL');
    await once(server.child, 'exit');
    await reader.read().catch(() => undefined);

    upstream.setFault(blob.digest, undefined);
    const index = createMetadataIndex({ path: path.join(root, 'index.db') }, { now: Date.now });
    assert.equal(index.getContent(blob.digest), undefined, 'the partial fill was never indexed');
    index.close();
    const restarted = await startPullthrough({ upstreams: [{ host: 'docker.io', url: upstream.url, default: true }], storageRoot: root });
    try {
      assert.deepEqual(await readdir(path.join(root, 'tmp')), [], 'temp files purged');
      const again = Buffer.from(await (await fetch(`${restarted.url}/v2/library/app/blobs/${blob.digest}`)).arrayBuffer());
      assert.ok(again.equals(blob.bytes));
    } finally {
      await restarted.close({ keepStorage: true });
    }
  });

  it('a full disk fails the fill cleanly, indexes nothing, says so, and keeps serving what is cached', async (t) => {
    const mountPoint = path.join(work, 'tiny');
    await mkdir(mountPoint);
    try {
      await run('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', mountPoint]);
    } catch (err) {
      // Mounting needs root, which CI has; elsewhere this one check cannot run (issue 5).
      t.skip(`cannot mount a tmpfs here: ${(err as Error).message.split('\n')[0]}`);
      return;
    }
    try {
      const cache = await startPullthrough({ upstreams: [{ host: 'docker.io', url: upstream.url, default: true }], storageRoot: mountPoint });
      try {
        await request(cache.url).get('/v2/library/app/manifests/1.0').expect(200);
        const big = makeRawBlob(2 * 1024 * 1024);
        upstream.addBlob(big);
        await assert.rejects(async () => {
          const res = await fetch(`${cache.url}/v2/library/app/blobs/${big.digest}`);
          await res.arrayBuffer();
        }, 'the response is cut, not completed');
        await waitUntil(async () => (await metricValue(cache.url, 'pullthrough_storage_errors_total', { operation: 'fill', code: 'ENOSPC' })) === 1, 'the ENOSPC metric');
        const index = createMetadataIndex({ path: path.join(mountPoint, 'index.db') }, { now: Date.now });
        assert.equal(index.getContent(big.digest), undefined);
        index.close();
        assert.deepEqual(await readdir(path.join(mountPoint, 'tmp')), [], 'the partial file is gone');
        const cached = await request(cache.url).get('/v2/library/app/manifests/1.0').expect(200);
        assert.equal(cached.headers['docker-content-digest'], image.digest);
      } finally {
        await cache.close({ keepStorage: true });
      }
    } finally {
      await run('umount', [mountPoint]);
    }
  });
});
