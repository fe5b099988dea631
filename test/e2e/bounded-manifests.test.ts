import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { freePort, startDaemon, statusKb, waitUntil, type Daemon } from '../helpers/processes.js';

const MiB = 2 ** 20;


/**
 * A hostile upstream: every manifest is a chunked body of `bytes`, sent as fast as the socket
 * takes it, well past any sane manifest size.
 */
async function startHostileUpstream(bytes: number): Promise<{ url: string; server: Server }> {
  const chunk = Buffer.alloc(64 * 1024, 0x7b);
  const server = createServer((req, res) => {
    if (!req.url?.includes('/manifests/')) return void res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    res.writeHead(200, { 'content-type': 'application/vnd.oci.image.manifest.v1+json' });
    let sent = 0;
    const pump = () => {
      while (sent < bytes && !res.destroyed) {
        sent += chunk.length;
        if (!res.write(chunk)) return void res.once('drain', pump);
      }
      res.end();
    };
    res.on('error', () => undefined);
    pump();
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server };
}

describe('memory under concurrent oversized manifests (cache.manifestReadBytes)', { timeout: 120_000 }, () => {
  let root: string;
  let upstream: { url: string; server: Server };
  let daemon: Daemon | undefined;

  before(async () => {
    root = await mkdtemp(path.join(tmpdir(), 'pullthrough-manifest-memory-'));
    upstream = await startHostileUpstream(6 * MiB);
  });
  after(async () => {
    await daemon?.stop();
    upstream.server.closeAllConnections();
    upstream.server.close();
    await rm(root, { recursive: true, force: true });
  });

  it('answers 300 concurrent chunked 6 MiB manifests with 503 while the process grows by at most 120 MiB', async (t) => {
    const port = await freePort();
    const config = path.join(root, 'config.yaml');
    await writeFile(config, `listen: 127.0.0.1:${port}\nlogLevel: error\nstorage: { root: ${path.join(root, 'data')} }\nupstreams:\n  - { host: docker.io, url: "${upstream.url}", default: true }\n`);
    daemon = startDaemon(process.execPath, ['--max-semi-space-size=4', '--import', 'tsx', 'src/main.ts', 'serve', '--config', config]);
    const base = `http://127.0.0.1:${port}`;
    await waitUntil(async () => (await fetch(`${base}/healthz`)).ok, 'pullthrough to start');
    const pid = daemon.child.pid!;
    // Idle, the built server sits near 80 MiB (tsx adds ~30): a growth of at most 120 MiB keeps it
    // within 200 MiB. Before the read budget it grew by over 200 MiB here.
    const idle = await statusKb(pid, 'VmRSS');

    const statuses = await Promise.all(
      Array.from({ length: 300 }, async (_, i) => {
        const response = await fetch(`${base}/v2/library/app${i}/manifests/v1`);
        await response.arrayBuffer();
        return response.status;
      }),
    );
    const peak = await statusKb(pid, 'VmHWM');
    assert.deepEqual([...new Set(statuses)], [503], 'every oversized manifest is a 503, none a 500');
    const grownMiB = (peak - idle) / 1024;
    t.diagnostic(`RSS idle ${(idle / 1024).toFixed(0)} MiB, peak ${(peak / 1024).toFixed(0)} MiB`);
    assert.ok(grownMiB <= 120, `RSS grew by ${grownMiB.toFixed(0)} MiB (idle ${(idle / 1024).toFixed(0)} MiB, peak ${(peak / 1024).toFixed(0)} MiB)`);
    assert.ok((await fetch(`${base}/healthz`)).ok, 'still serving');
  });
});
