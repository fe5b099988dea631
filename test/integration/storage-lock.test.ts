import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { runStorageCommand } from '../../src/cli/storage-commands.js';
import { parseConfig } from '../../src/config/load-config.js';
import { LOCK_FILE } from '../../src/storage/storage-lock.js';
import { startPullthrough, type RunningPullthrough } from '../helpers/pullthrough.js';

const upstreams = [{ host: 'docker.io', url: 'http://127.0.0.1:1', default: true }];

/** A file as a long-running fill or a crash leaves it: old enough for gc to take it for dead. */
async function oldFile(file: string): Promise<string> {
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, 'bytes');
  const longAgo = new Date(Date.now() - 48 * 3_600_000);
  await utimes(file, longAgo, longAgo);
  return file;
}

describe('the storage lock (storage/server.lock)', () => {
  let root: string;
  const running: RunningPullthrough[] = [];

  beforeEach(async () => {
    root = await mkdtemp(path.join(tmpdir(), 'pullthrough-lock-'));
  });
  afterEach(async () => {
    for (const server of running.splice(0).reverse()) await server.close({ keepStorage: true });
    await rm(root, { recursive: true, force: true });
  });

  it('keeps a second instance on a live server’s storage from purging tmp/ and collecting garbage', async () => {
    running.push(await startPullthrough({ upstreams, storageRoot: root, storage: { gcInterval: 0 } }));
    const fill = await oldFile(path.join(root, 'tmp', 'a-running-fill'));
    const stray = await oldFile(path.join(root, 'blobs', 'sha256', 'ab', 'ab'.repeat(32)));
    // What preload and export start when they cannot reach the server: same storage, own timer.
    running.push(await startPullthrough({ upstreams, storageRoot: root, storage: { gcInterval: '50ms' } }));
    assert.ok(existsSync(fill), 'the live server’s fill is still in tmp/');
    await sleep(300);
    assert.ok(existsSync(fill) && existsSync(stray), 'no garbage collection beside the owner');
  });

  it('makes `pullthrough gc` refuse while a live server owns the storage', async () => {
    running.push(await startPullthrough({ upstreams, storageRoot: root, storage: { gcInterval: 0 } }));
    const fill = await oldFile(path.join(root, 'tmp', 'a-running-fill'));
    let err = '';
    const sink = (write: (text: string) => void) => new Writable({ write: (chunk: Buffer, _e, done) => (write(chunk.toString()), done()) });
    const io = { out: sink(() => undefined), err: sink((t) => (err += t)), isInteractive: false, env: {}, now: Date.now };
    const config = parseConfig({ storage: { root }, upstreams }, {}, 'test');
    assert.equal(await runStorageCommand('gc', [], config, io), 1);
    assert.match(err, /serves this storage/);
    assert.ok(existsSync(fill));
  });

  it('takes over a lock whose process is gone, and removes its own at close', async () => {
    const gone = spawnSync(process.execPath, ['-e', '0']).pid;
    await writeFile(path.join(root, LOCK_FILE), JSON.stringify({ pid: gone, processStartedAt: 0, url: 'http://127.0.0.1:1' }));
    const fill = await oldFile(path.join(root, 'tmp', 'left-by-a-crash'));
    const server = await startPullthrough({ upstreams, storageRoot: root });
    assert.equal(existsSync(fill), false, 'the owner purges what a dead process left');
    await server.close({ keepStorage: true });
    assert.equal(existsSync(path.join(root, LOCK_FILE)), false);
  });
});
