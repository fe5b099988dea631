import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { spawn } from 'node:child_process';
import { freePort, runCommand, waitUntil } from '../helpers/processes.js';

/** Whether something accepts TCP connections on 127.0.0.1:port. */
function isListening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

describe('npm start', { timeout: 120_000 }, () => {
  let root: string;
  before(async () => {
    root = await mkdtemp(path.join(tmpdir(), 'pullthrough-npm-start-'));
    await runCommand('npm', ['run', 'build'], { timeoutMs: 120_000 });
  });
  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it('serves with the config PULLTHROUGH_CONFIG names, and SIGTERM to npm stops the server', async () => {
    const port = await freePort();
    const config = path.join(root, 'my-config.yaml');
    await writeFile(config, `listen: 127.0.0.1:${port}\nlogLevel: warn\nstorage: { root: ${path.join(root, 'data')} }\nupstreams:\n  - { host: docker.io, url: "http://127.0.0.1:1", default: true }\n`);
    // A process group of its own, so that whatever npm leaves behind can be cleaned up after a failure.
    const npm = spawn('npm', ['start', '--silent'], { env: { ...process.env, PULLTHROUGH_CONFIG: config }, stdio: 'ignore', detached: true });
    try {
      await waitUntil(async () => (await fetch(`http://127.0.0.1:${port}/healthz`)).ok, `pullthrough on the port of ${config}`);
      const exited = once(npm, 'exit');
      npm.kill('SIGTERM');
      await exited;
      // The server is npm's grandchild (npm → sh → node) unless the script execs it: it must be gone too.
      await waitUntil(async () => !(await isListening(port)), 'the server to stop listening', 10_000);
    } finally {
      try {
        process.kill(-npm.pid!, 'SIGKILL');
      } catch {
        // Already gone, as it should be.
      }
    }
  });
});
