/*
 * A focused measurement of the blob miss path: one 200 MiB blob filled from an in-process
 * upstream on loopback while one client downloads it, per build, in alternating rounds. Reports
 * the server's CPU-seconds for the fill (user + system, from /proc/<pid>/stat, from just before
 * the GET until the blob is committed) and the client's wall time (measured in its own process),
 * median of the rounds.
 * Run: npm run build && node --import tsx bench/cold-fill.ts [distDir ...] [--rounds N]
 * With several dist directories (e.g. a copy of main's build next to package.json and
 * node_modules), each round runs every build in turn, so the figures share the machine's load.
 */
import { access, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { startFakeUpstream } from '../test/fakes/fake-upstream.js';
import { makeRawBlob } from '../test/helpers/images.js';
import { freePort, startDaemon, waitUntil } from '../test/helpers/processes.js';
import { drainInChild } from './drain.js';

const args = process.argv.slice(2);
const roundsAt = args.indexOf('--rounds');
const rounds = roundsAt >= 0 ? Number(args.splice(roundsAt, 2)[1]) : 3;
const dists = args.length > 0 ? args : ['dist'];
const SIZE = 200 * 2 ** 20;
// Linux reports process times in clock ticks; 100 per second on every kernel Node runs on.
const TICKS_PER_SECOND = 100;

async function cpuSeconds(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name (which may hold spaces) start after its closing parenthesis.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND;
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;

const upstream = await startFakeUpstream();
const work = await mkdtemp(path.join(tmpdir(), 'pullthrough-cold-fill-'));
const results = new Map<string, Array<{ cpu: number; wall: number }>>(dists.map((d) => [d, []]));
try {
  for (let round = 0; round < rounds; round++) {
    // A new blob each round: every fill is a cold one, and no upstream cache warms between builds.
    for (const dist of dists) {
      const blob = makeRawBlob(SIZE);
      upstream.addBlob(blob);
      const port = await freePort();
      const root = path.join(work, `data-${round}-${dists.indexOf(dist)}`);
      const config = path.join(work, `c-${port}.yaml`);
      await writeFile(config, `listen: 127.0.0.1:${port}\nlogLevel: error\nstorage: { root: ${root} }\nupstreams:\n  - { host: docker.io, url: "${upstream.url}", default: true }\n`);
      const server = startDaemon(process.execPath, ['--max-semi-space-size=4', path.join(dist, 'main.js'), 'serve', '--config', config]);
      try {
        const base = `http://127.0.0.1:${port}`;
        await waitUntil(async () => (await fetch(`${base}/healthz`)).ok, 'server');
        await sleep(500);
        const pid = server.child.pid!;
        const cpuBefore = await cpuSeconds(pid);
        // The client runs in a process of its own (as in blob-serve): in this one, it would compete
        // with the upstream for the event loop, and its timing would say more about this process.
        const got = await drainInChild(`${base}/v2/library/x/blobs/${blob.digest}`, 1);
        const wall = got.seconds;
        if (got.bytes !== SIZE) throw new Error(`${dist}: got ${got.bytes} bytes`);
        const file = path.join(root, 'blobs', 'sha256', blob.digest.slice(7, 9), blob.digest.slice(7));
        await waitUntil(() => access(file).then(() => true), 'the commit');
        const cpu = (await cpuSeconds(pid)) - cpuBefore;
        results.get(dist)!.push({ cpu, wall });
        console.log(`round ${round + 1} ${dist}: ${cpu.toFixed(2)} CPU-s, ${wall.toFixed(2)} s wall`);
      } finally {
        await server.stop();
        await rm(root, { recursive: true, force: true });
      }
    }
  }
  for (const [dist, runs] of results) {
    console.log(`${dist}: cold fill of 200 MiB to 1 client, median of ${runs.length}: ${median(runs.map((r) => r.cpu)).toFixed(2)} CPU-s, ${median(runs.map((r) => r.wall)).toFixed(2)} s wall`);
  }
} finally {
  await upstream.close();
  await rm(work, { recursive: true, force: true });
}
