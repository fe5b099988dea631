import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startFakeUpstream, type FakeUpstream } from '../fakes/fake-upstream.js';
import { makeRawBlob } from '../helpers/images.js';
import { freePort, startDaemon, waitUntil } from '../helpers/processes.js';
import { startPullthrough } from '../helpers/pullthrough.js';

describe('SIGTERM', { timeout: 120_000 }, () => {
  let upstream: FakeUpstream;
  let root: string;

  before(async () => {
    upstream = await startFakeUpstream();
    root = await mkdtemp(path.join(tmpdir(), 'pullthrough-sigterm-'));
  });
  after(async () => {
    await upstream.close();
    await rm(root, { recursive: true, force: true });
  });

  it('lets a running fill and its client finish, then exits 0 with a consistent cache', async () => {
    const blob = makeRawBlob(4 * 1024 * 1024);
    upstream.addBlob(blob);
    // About two seconds of body: long enough to signal in the middle of it.
    upstream.setFault(blob.digest, { type: 'slow', chunkBytes: 128 * 1024, delayMs: 60 });
    const port = await freePort();
    const config = path.join(root, 'config.yaml');
    await writeFile(config, `listen: 127.0.0.1:${port}\nlogLevel: warn\nstorage: { root: ${path.join(root, 'data')} }\nupstreams:\n  - { host: docker.io, url: "${upstream.url}", default: true }\n`);
    const server = startDaemon(process.execPath, ['--import', 'tsx', 'src/main.ts', 'serve', '--config', config]);
    const url = `http://127.0.0.1:${port}/v2/library/app/blobs/${blob.digest}`;
    await waitUntil(async () => (await fetch(`http://127.0.0.1:${port}/healthz`)).ok, 'pullthrough to start');

    const response = await fetch(url);
    const reader = response.body!.getReader();
    const chunks: Uint8Array[] = [];
    let received = 0;
    while (received < 512 * 1024) {
      const { value } = await reader.read();
      chunks.push(value!);
      received += value!.length;
    }
    server.child.kill('SIGTERM');
    const exited = once(server.child, 'exit');
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      chunks.push(value);
    }
    const [code] = await exited;
    assert.equal(code, 0, server.output());
    assert.ok(Buffer.concat(chunks).equals(blob.bytes), 'the client got the whole blob');

    upstream.setFault(blob.digest, undefined);
    const restarted = await startPullthrough({ upstreams: [{ host: 'docker.io', url: upstream.url, default: true }], storageRoot: path.join(root, 'data') });
    try {
      assert.deepEqual(await readdir(path.join(root, 'data', 'tmp')), []);
      const again = Buffer.from(await (await fetch(`${restarted.url}/v2/library/app/blobs/${blob.digest}`)).arrayBuffer());
      assert.ok(again.equals(blob.bytes));
      assert.equal(upstream.count('GET', `/v2/library/app/blobs/${blob.digest}`), 1, 'the fill was committed before exit');
    } finally {
      await restarted.close({ keepStorage: true });
    }
  });
});
