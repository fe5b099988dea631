/*
 * A focused measurement for tuning the cached-blob path: one 200 MiB cached blob, 8 concurrent
 * readers, then 100 concurrent readers of a 5 MiB blob; aggregate MiB/s and the server's peak RSS.
 * Run: npm run build && node --import tsx bench/blob-serve.ts [distDir] (another build's dist, next
 * to its package.json and node_modules, to compare).
 */
import { readFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startFakeUpstream } from '../test/fakes/fake-upstream.js';
import { makeRawBlob } from '../test/helpers/images.js';
import { freePort, startDaemon, waitUntil } from '../test/helpers/processes.js';
import { closeDrainAgent, drain, drainInChild } from './drain.js';

const work = await mkdtemp(path.join(tmpdir(), 'pullthrough-blob-bench-'));
const upstream = await startFakeUpstream();
const big = makeRawBlob(200 * 1024 * 1024);
const mid = makeRawBlob(5 * 1024 * 1024);
upstream.addBlob(big);
upstream.addBlob(mid);
const port = await freePort();
await writeFile(path.join(work, 'c.yaml'), `listen: 127.0.0.1:${port}\nlogLevel: error\nstorage: { root: ${work}/data }\nupstreams:\n  - { host: docker.io, url: "${upstream.url}", default: true }\n`);
const dist = process.argv[2] ?? 'dist';
const server = startDaemon(process.execPath, ['--max-semi-space-size=4', path.join(dist, 'main.js'), 'serve', '--config', path.join(work, 'c.yaml')]);
try {
  const base = `http://127.0.0.1:${port}`;
  await waitUntil(async () => (await fetch(`${base}/healthz`)).ok, 'server');
  for (const b of [big, mid]) await drain(`${base}/v2/library/x/blobs/${b.digest}`);
  for (const [label, blob, clients] of [['200 MiB x 8', big, 8], ['5 MiB x 100', mid, 100]] as const) {
    const run = await drainInChild(`${base}/v2/library/x/blobs/${blob.digest}`, clients);
    console.log(`${label}: ${(run.bytes / 2 ** 20 / run.seconds).toFixed(0)} MiB/s`);
  }
  const status = await readFile(`/proc/${server.child.pid}/status`, 'utf8');
  console.log(`peak RSS ${Number(/VmHWM:\s+(\d+)/.exec(status)?.[1]) / 1024 | 0} MiB`);
} finally {
  closeDrainAgent();
  await server.stop();
  await upstream.close();
  await rm(work, { recursive: true, force: true });
}
