/*
 * npm run bench:cluster: four pullthrough processes in front of one distribution upstream, every
 * one pulling the same cold image at once with skopeo, with `cluster` on (static peers, a shared
 * secret) and off (four independent caches); then, cluster on, the owner of the biggest layer is
 * killed with SIGKILL mid-pull and the other three pulls must still complete with the right
 * digests. Prints one table side by side and writes it as JSON to bench/results/. Loopback only;
 * every pull is bounded by skopeoCopy's timeout, every wait by a deadline.
 * Env: BENCH_ROUNDS (3), BENCH_LAYERS_MIB (5,50,200), BENCH_KILL_AT (0.3 of the biggest layer).
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { cpus, tmpdir, totalmem } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { skopeoCopy } from '../test/helpers/clients.js';
import { startDistribution, type Distribution } from '../test/helpers/distribution.js';
import { sha256, type ImageManifest } from '../test/helpers/images.js';
import { freePort, requireBinary, startDaemon, waitUntil, type Daemon } from '../test/helpers/processes.js';
import { rendezvousOrder } from '../src/upstream/cluster-members.js';
import { median, peakRssMiB, rawImage } from './fixtures.js';

const MiB = 1024 * 1024;
const MEMBERS = 4;
const ROUNDS = Number(process.env['BENCH_ROUNDS'] ?? 3);
const LAYERS_MIB = (process.env['BENCH_LAYERS_MIB'] ?? '5,50,200').split(',').map(Number);
/** The owner is killed once this share of the biggest layer has reached its temp file. */
const KILL_AT = Number(process.env['BENCH_KILL_AT'] ?? 0.3);
/** If the owner's fill is never seen that far (a fast machine), it is killed after this long anyway. */
const KILL_DEADLINE_MS = 30_000;
const SECRET = randomBytes(32).toString('hex');

async function timed<T>(work: () => Promise<T>): Promise<{ seconds: number; value: T }> {
  const started = performance.now();
  const value = await work();
  return { seconds: (performance.now() - started) / 1000, value };
}

/**
 * Whether a `skopeo copy … dir:` result is exactly `image`: the manifest's own bytes (hence its
 * digest), and every blob file named by its digest holding bytes of that digest.
 */
function isExactCopy(files: Map<string, Buffer>, image: ImageManifest): boolean {
  const manifest = files.get('manifest.json');
  if (!manifest || sha256(manifest) !== image.digest) return false;
  for (const blob of [image.config, ...image.layers]) {
    const hex = blob.digest.slice('sha256:'.length);
    const bytes = files.get(hex);
    if (!bytes || createHash('sha256').update(bytes).digest('hex') !== hex) return false;
  }
  return true;
}

interface Member {
  readonly url: string;
  readonly host: string;
  readonly root: string;
  readonly daemon: Daemon;
}

/** The largest file in a member's tmp/ (its fills in progress), in bytes. */
async function largestTempFile(root: string): Promise<number> {
  const dir = path.join(root, 'tmp');
  let largest = 0;
  for (const name of await readdir(dir).catch(() => [] as string[])) {
    const info = await stat(path.join(dir, name)).catch(() => undefined);
    if (info?.isFile()) largest = Math.max(largest, info.size);
  }
  return largest;
}

async function main(): Promise<void> {
  for (const binary of ['docker-registry', 'skopeo']) await requireBinary(binary);
  const work = await mkdtemp(path.join(tmpdir(), 'pullthrough-cluster-bench-'));
  const log = (line: string) => process.stderr.write(`${line}\n`);
  const daemons: Daemon[] = [];
  let upstream: Distribution | undefined;
  try {
    const secretFile = path.join(work, 'cluster-secret');
    await writeFile(secretFile, `${SECRET}\n`, { mode: 0o600 });
    log('seeding the upstream…');
    // The upstream's own access log counts what it sent: nothing of ours sits in the data path.
    upstream = await startDistribution({ accessLog: true });
    const served = upstream;
    const upstreamBytes = () => served.served().reduce((sum, r) => sum + (r.method === 'GET' ? r.bytes : 0), 0);
    // One image for every round: each round's members start with empty storage, so it is cold to them.
    const image = rawImage(LAYERS_MIB);
    await upstream.push('library/big', '1.0', image);
    const imageBytes = image.bytes.length + image.config.bytes.length + image.layers.reduce((s, l) => s + l.bytes.length, 0);
    const biggest = image.layers.reduce((a, b) => (a.bytes.length >= b.bytes.length ? a : b));
    const direct = () => skopeoCopy(`${upstream!.url.slice('http://'.length)}/library/big:1.0`, { tlsVerify: false });

    let roundNo = 0;
    /** Four members on fresh storage, as npm start runs them; with `isCluster`, each names all four as peers. */
    async function startMembers(isCluster: boolean): Promise<Member[]> {
      roundNo += 1;
      const ports = await Promise.all(Array.from({ length: MEMBERS }, () => freePort()));
      const urls = ports.map((port) => `http://127.0.0.1:${port}`);
      return Promise.all(
        ports.map(async (port, i) => {
          const root = path.join(work, `round-${roundNo}`, `member-${i}`);
          await mkdir(root, { recursive: true });
          const config = path.join(work, `round-${roundNo}-member-${i}.yaml`);
          const cluster = isCluster ? `cluster:\n  self: ${urls[i]}\n  peers: [${urls.join(', ')}]\n  secretFile: ${secretFile}\n` : '';
          await writeFile(config, `listen: 127.0.0.1:${port}\nlogLevel: error\nstorage: { root: ${root} }\nupstreams:\n  - { host: docker.io, url: "${upstream!.url}", default: true }\n${cluster}`);
          const daemon = startDaemon(process.execPath, ['--max-semi-space-size=4', 'dist/main.js', 'serve', '--config', config]);
          daemons.push(daemon);
          await waitUntil(async () => (await fetch(`http://127.0.0.1:${port}/healthz`)).ok, `pullthrough member ${i}`);
          return { url: urls[i]!, host: `127.0.0.1:${port}`, root, daemon };
        }),
      );
    }

    async function stopMembers(members: readonly Member[]): Promise<void> {
      await Promise.all(members.map((m) => m.daemon.stop()));
      await rm(path.dirname(members[0]!.root), { recursive: true, force: true });
    }

    /** Every member pulls the image at once; each pull's time, exactness, or failure. */
    async function pullEverywhere(members: readonly Member[]) {
      return Promise.all(
        members.map(async (member) => {
          const started = performance.now();
          try {
            const pull = await skopeoCopy(`${member.host}/library/big:1.0`, { tlsVerify: false });
            const isExact = isExactCopy(pull.files, image);
            await pull.cleanup();
            return { member: member.url, seconds: (performance.now() - started) / 1000, isExact, error: undefined };
          } catch (err) {
            return { member: member.url, seconds: (performance.now() - started) / 1000, isExact: false, error: (err as Error).message.split('\n').find((l) => l.includes('rror')) ?? (err as Error).message.slice(0, 200) };
          }
        }),
      );
    }

    interface Round {
      mode: 'on' | 'off';
      directSeconds: number;
      slowestSeconds: number;
      upstreamBytes: number;
      peakRssMiB: number[];
      allExact: boolean;
      peerBytes: number[];
    }
    const rounds: Round[] = [];
    const metricOf = async (url: string, pattern: RegExp) => Number(pattern.exec(await (await fetch(`${url}/metrics`)).text())?.[1] ?? NaN);

    for (let round = 0; round < ROUNDS; round++) {
      // On and off take turns going first, so neither always meets a warmer machine.
      for (const mode of round % 2 === 0 ? (['on', 'off'] as const) : (['off', 'on'] as const)) {
        log(`round ${round + 1}/${ROUNDS}, cluster ${mode}: a direct pull, then ${MEMBERS} pulls at once…`);
        const directPull = await timed(direct);
        await directPull.value.cleanup();
        const members = await startMembers(mode === 'on');
        const before = upstreamBytes();
        const pulls = await pullEverywhere(members);
        const failed = pulls.filter((p) => p.error);
        if (failed.length > 0) throw new Error(`cluster ${mode}: ${failed.length} pull(s) failed: ${failed.map((f) => `${f.member}: ${f.error}`).join('; ')}`);
        rounds.push({
          mode,
          directSeconds: directPull.seconds,
          slowestSeconds: Math.max(...pulls.map((p) => p.seconds)),
          upstreamBytes: upstreamBytes() - before,
          peakRssMiB: await Promise.all(members.map((m) => peakRssMiB(m.daemon.child.pid))),
          allExact: pulls.every((p) => p.isExact),
          peerBytes: await Promise.all(members.map((m) => metricOf(m.url, /^pullthrough_served_bytes_total\{source="peer"\} (\S+)$/m).catch(() => NaN))),
        });
        await stopMembers(members);
      }
    }

    log(`kill round: cluster on, the owner of the ${Math.round(biggest.bytes.length / MiB)} MiB layer is killed after ${Math.round(KILL_AT * 100)} % of it…`);
    const members = await startMembers(true);
    const owner = rendezvousOrder(members, biggest.digest)[0]!;
    const before = upstreamBytes();
    const pulling = pullEverywhere(members);
    const deadline = Date.now() + KILL_DEADLINE_MS;
    let seenBytes = 0;
    while (seenBytes < KILL_AT * biggest.bytes.length && Date.now() < deadline) {
      await sleep(10);
      seenBytes = Math.max(seenBytes, await largestTempFile(owner.root));
    }
    owner.daemon.child.kill('SIGKILL');
    const killedAt = { bytes: seenBytes, share: seenBytes / biggest.bytes.length, byDeadline: seenBytes < KILL_AT * biggest.bytes.length };
    const pulls = await pulling;
    const others = pulls.filter((p) => p.member !== owner.url);
    const kill = {
      owner: owner.url,
      killedAt,
      othersCompleted: others.filter((p) => !p.error).length,
      othersExact: others.filter((p) => p.isExact).length,
      ownerClient: pulls.find((p) => p.member === owner.url)?.error ? 'failed (expected)' : 'completed',
      slowestOtherSeconds: Math.max(...others.map((p) => p.seconds)),
      upstreamBytes: upstreamBytes() - before,
      failures: others.filter((p) => p.error).map((p) => `${p.member}: ${p.error}`),
    };
    await stopMembers(members);

    const of = (mode: 'on' | 'off') => rounds.filter((r) => r.mode === mode);
    const bytesRatio = (mode: 'on' | 'off') => median(of(mode).map((r) => r.upstreamBytes / imageBytes));
    const slowest = (mode: 'on' | 'off') => median(of(mode).map((r) => r.slowestSeconds / r.directSeconds));
    const peak = (mode: 'on' | 'off') => Math.max(...of(mode).flatMap((r) => r.peakRssMiB));
    const peakRange = (mode: 'on' | 'off') => {
      const all = of(mode).flatMap((r) => r.peakRssMiB);
      return `${Math.min(...all).toFixed(0)}–${Math.max(...all).toFixed(0)}`;
    };
    const fmt = (n: number) => (Number.isNaN(n) ? '–' : n >= 100 ? n.toFixed(0) : n >= 10 ? n.toFixed(1) : n.toFixed(2));
    const rows = [
      { figure: `upstream bytes per image byte, ${MEMBERS} members, whole cluster (goal 1.00; median of ${ROUNDS})`, on: bytesRatio('on'), off: bytesRatio('off'), unit: '×' },
      { figure: `slowest of the ${MEMBERS} pulls, × a direct pull of the same round (direct: median ${median(rounds.map((r) => r.directSeconds)).toFixed(2)} s)`, on: slowest('on'), off: slowest('off'), unit: '×' },
      { figure: `peak RSS per instance, highest (range: on ${peakRange('on')}, off ${peakRange('off')})`, on: peak('on'), off: peak('off'), unit: 'MiB' },
      { figure: 'every pull got the exact image (manifest digest, every blob file)', on: of('on').every((r) => r.allExact) ? 1 : 0, off: of('off').every((r) => r.allExact) ? 1 : 0, unit: '' },
    ];
    const machine = `${cpus().length} × ${cpus()[0]?.model.trim() ?? 'cpu'}, ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}`;
    const yesNo = (n: number) => (n === 1 ? 'yes' : 'no');
    const table = [
      `machine: ${machine}; ${Math.round(imageBytes / MiB)} MiB image (layers ${LAYERS_MIB.join(', ')} MiB), ${MEMBERS} skopeo pulls at once`,
      '',
      '| figure | cluster on | cluster off (4 caches) |',
      '| --- | ---: | ---: |',
      ...rows.map((r) => (r.unit === '' ? `| ${r.figure} | ${yesNo(r.on)} | ${yesNo(r.off)} |` : `| ${r.figure} | ${fmt(r.on)} ${r.unit} | ${fmt(r.off)} ${r.unit} |`)),
      '',
      `kill -9 of the owner of the ${Math.round(biggest.bytes.length / MiB)} MiB layer after ${Math.round(killedAt.share * 100)} % of it${killedAt.byDeadline ? ` (by the ${KILL_DEADLINE_MS / 1000} s deadline)` : ''}:`,
      `  pulls of the other ${MEMBERS - 1} members completed: ${kill.othersCompleted} of ${others.length}, exact image: ${kill.othersExact} of ${others.length}; the killed member's own pull: ${kill.ownerClient}`,
      `  slowest of them: ${fmt(kill.slowestOtherSeconds)} s; upstream bytes per image byte in this round: ${fmt(kill.upstreamBytes / imageBytes)} ×`,
      ...kill.failures.map((f) => `  FAILED ${f}`),
    ].join('\n');
    process.stdout.write(`${table}\n`);
    const file = path.join('bench', 'results', `cluster-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
    await writeFile(file, JSON.stringify({ machine, date: new Date().toISOString(), imageBytes, layersMiB: LAYERS_MIB, rows, rounds, kill }, null, 2));
    log(`written to ${file}`);
    if (kill.othersExact !== others.length) process.exitCode = 1;
  } finally {
    await Promise.all(daemons.map((d) => d.stop()));
    await upstream?.stop();
    await rm(work, { recursive: true, force: true });
  }
}

await main();
