/*
 * npm run bench: pullthrough against the CNCF distribution registry in proxy mode (the peer),
 * both in front of the same distribution upstream, on loopback, with generated images. Prints
 * one table (figure, peer, pullthrough, ratio) and writes it as JSON to bench/results/.
 * Everything is bounded in time; nothing leaves 127.0.0.1.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir, cpus, totalmem } from 'node:os';
import path from 'node:path';
import { skopeoCopy } from '../test/helpers/clients.js';
import { startDistribution } from '../test/helpers/distribution.js';
import { OCI, sha256 } from '../test/helpers/images.js';
import { freePort, requireBinary, startDaemon, waitUntil, type Daemon } from '../test/helpers/processes.js';
import { closeDrainAgent, drain, drainInChild } from './drain.js';
import { loadTest } from './load.js';
import { imageOf, median, peakRssMiB, rawImage } from './fixtures.js';

const MiB = 1024 * 1024;
const LOAD_SECONDS = Number(process.env['BENCH_LOAD_SECONDS'] ?? 10);
const SOAK_SECONDS = Number(process.env['BENCH_SOAK_SECONDS'] ?? 60);
const SOAK_CLIENTS = Number(process.env['BENCH_SOAK_CLIENTS'] ?? 200);
const BIG_LAYERS = (process.env['BENCH_LAYERS_MIB'] ?? '5,50,200').split(',').map(Number);
/** Throughput figures vary by tens of percent between runs on two shared cores: take the median of this many, peer and pullthrough in turn. */
const ROUNDS = Number(process.env['BENCH_ROUNDS'] ?? 5);
/** Cold pulls need an image new to both caches each round: this many images of BIG_LAYERS. */
const COLD_ROUNDS = Number(process.env['BENCH_COLD_ROUNDS'] ?? 3);
/** Which phases run (to measure one in isolation): any of cold,warm,blob,manifests,misses,soak. */
const PHASES = new Set((process.env['BENCH_PHASES'] ?? 'cold,warm,blob,manifests,misses,soak').split(','));
/** What the soak's clients ask for: manifest by tag, by digest, a small blob, a 5 MiB blob, and (one in ten) a miss. */
const SOAK_MIX = new Set((process.env['BENCH_SOAK_MIX'] ?? 'tag,digest,small,big,miss').split(','));
/** Extra node options for pullthrough, space-separated (say `--trace-gc` or `--heapsnapshot-signal=SIGUSR2`). */
const PT_NODE_ARGS = (process.env['BENCH_PT_NODE_ARGS'] ?? '').split(' ').filter(Boolean);

interface Row {
  figure: string;
  peer: number | undefined;
  pullthrough: number;
  unit: string;
  /** Which way is better, for the ratio column. */
  better: 'higher' | 'lower';
}

async function rssMiB(pid: number | undefined): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? NaN) / 1024;
}

/** CPU seconds (user + system) a process has used so far. */
async function cpuSeconds(pid: number | undefined): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  // Fields after the command's closing parenthesis; utime and stime are the 12th and 13th, in clock ticks (100 per second on Linux).
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** Resets a process's peak RSS (VmHWM), so each phase's peak can be read on its own. */
async function resetPeak(pid: number | undefined): Promise<void> {
  if (pid) await writeFile(`/proc/${pid}/clear_refs`, '5').catch(() => undefined);
}

async function timed<T>(work: () => Promise<T>): Promise<{ seconds: number; value: T }> {
  const started = performance.now();
  const value = await work();
  return { seconds: (performance.now() - started) / 1000, value };
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

async function main(): Promise<void> {
  for (const binary of ['docker-registry', 'skopeo']) await requireBinary(binary);
  const work = await mkdtemp(path.join(tmpdir(), 'pullthrough-bench-'));
  const daemons: Daemon[] = [];
  const rows: Row[] = [];
  const log = (line: string) => process.stderr.write(`${line}\n`);
  try {
    log('seeding the upstream…');
    // The upstream's own access log counts what it sent: no proxy of ours sits in the data path.
    const upstream = await startDistribution({ accessLog: true });
    const upstreamBytes = () => upstream.served().reduce((sum, r) => sum + (r.method === 'GET' ? r.bytes : 0), 0);
    const upstreamGets = (pattern: RegExp) => upstream.served().filter((r) => r.method === 'GET' && pattern.test(r.path)).length;
    // Each cold round pulls its own image; the first, warm by then, serves the warm figures.
    const colds = Array.from({ length: COLD_ROUNDS }, () => rawImage(BIG_LAYERS));
    const big = colds[0]!;
    const fresh = rawImage([Math.max(...BIG_LAYERS)]);
    const small = rawImage([0.1, 0.05]);
    for (const [i, image] of colds.entries()) await upstream.push(i === 0 ? 'library/big' : `library/cold-${i}`, '1.0', image);
    await upstream.push('library/fresh', '1.0', fresh);
    await upstream.push('library/small', '1.0', small);
    const soakBlobs = Array.from({ length: 400 }, () => randomBytes(64 * 1024)).map((bytes) => ({ bytes, digest: sha256(bytes), mediaType: 'application/vnd.oci.image.layer.v1.tar' }));
    await upstream.push('library/soak', '1.0', imageOf(soakBlobs));

    const peerPort = await freePort();
    const peer = await startDistribution({ proxyRemoteUrl: upstream.url, port: peerPort });
    const startPullthrough = async (name: string, tagTtl: string, extra = '') => {
      const port = await freePort();
      const config = path.join(work, `${name}.yaml`);
      await mkdir(path.join(work, name), { recursive: true });
      await writeFile(config, `listen: 127.0.0.1:${port}\nlogLevel: error\nstorage: { root: ${path.join(work, name)} }\nupstreams:\n  - { host: docker.io, url: "${upstream.url}", default: true, tagTtl: "${tagTtl}" }\n${extra}`);
      // With the V8 flags and malloc setting of npm start and the container (package.json, Dockerfile).
      const daemon = startDaemon(process.execPath, ['--max-semi-space-size=4', '--heap-growing-percent=30', ...PT_NODE_ARGS, 'dist/main.js', 'serve', '--config', config], { ...process.env, MALLOC_ARENA_MAX: '2' });
      daemons.push(daemon);
      await waitUntil(async () => (await fetch(`http://127.0.0.1:${port}/healthz`)).ok, `pullthrough ${name}`);
      return { url: `http://127.0.0.1:${port}`, host: `127.0.0.1:${port}`, pid: daemon.child.pid };
    };
    const pt = await startPullthrough('pullthrough', '5m');
    log(`pullthrough (the one measured) is pid ${pt.pid}`);
    const ptAlways = await startPullthrough('pullthrough-ttl0', '0');
    // The same, filling an image's blobs ahead of the client (off by default; README "Configuration").
    const ptPrefetch = await startPullthrough('pullthrough-prefetch', '5m', 'cache: { prefetchBlobs: 3 }\n');
    const servers = { peer: { url: peer.url, host: `127.0.0.1:${peerPort}`, pid: peer.pid }, pullthrough: pt };
    /** Peak RSS of each server, phase by phase (VmHWM is reset at each phase's start). */
    const phasePeaks: Array<{ phase: string; peer: number; pullthrough: number; peerCpuSeconds: number; pullthroughCpuSeconds: number }> = [];
    let phase = '';
    // CPU seconds per phase: on shared cores a steadier sign of a server's cost than its wall-clock figures.
    let cpuAtStart = { peer: 0, pullthrough: 0 };
    const startPhase = async (name: string) => {
      const cpu = { peer: await cpuSeconds(peer.pid), pullthrough: await cpuSeconds(pt.pid) };
      if (phase) phasePeaks.push({ phase, peer: await peakRssMiB(peer.pid), pullthrough: await peakRssMiB(pt.pid), peerCpuSeconds: cpu.peer - cpuAtStart.peer, pullthroughCpuSeconds: cpu.pullthrough - cpuAtStart.pullthrough });
      cpuAtStart = cpu;
      phase = name;
      await Promise.all([resetPeak(peer.pid), resetPeak(pt.pid)]);
    };
    let soakMemory = '(no soak)';
    const imageBytes = big.bytes.length + big.config.bytes.length + big.layers.reduce((s, l) => s + l.bytes.length, 0);

    if (PHASES.has('cold')) {
      log('1. cold pulls…');
      await startPhase('cold pull');
      const cold: Record<string, Array<{ ratio: number; upstreamBytes: number }>> = { peer: [], pullthrough: [], prefetch: [] };
      const coldServers = { ...servers, prefetch: ptPrefetch };
      const directSeconds: number[] = [];
      for (let round = 0; round < COLD_ROUNDS; round++) {
        const repository = round === 0 ? 'library/big' : `library/cold-${round}`;
        const direct = await timed(() => skopeoCopy(`${upstream.url.slice(7)}/${repository}:1.0`, { tlsVerify: false }));
        await direct.value.cleanup();
        directSeconds.push(direct.seconds);
        // Peer and pullthrough take turns going first, so neither always meets a warmer machine.
        const order = round % 2 === 0 ? (['peer', 'pullthrough', 'prefetch'] as const) : (['prefetch', 'pullthrough', 'peer'] as const);
        for (const name of order) {
          const before = upstreamBytes();
          const pull = await timed(() => skopeoCopy(`${coldServers[name].host}/${repository}:1.0`, { tlsVerify: false }));
          await pull.value.cleanup();
          // distribution's proxy finishes writing its copy after the client is served; give it a moment.
          await new Promise((r) => setTimeout(r, 2_000));
          cold[name]!.push({ ratio: pull.seconds / direct.seconds, upstreamBytes: upstreamBytes() - before });
        }
    }
    const coldRatio = (name: string) => median(cold[name]!.map((c) => c.ratio));
    const coldBytes = (name: string) => median(cold[name]!.map((c) => c.upstreamBytes)) / imageBytes;
    rows.push({ figure: `cold pull, ${Math.round(imageBytes / MiB)} MiB image, × the direct pull of the same round (direct: median ${median(directSeconds).toFixed(2)} s; median of ${COLD_ROUNDS})`, peer: coldRatio('peer'), pullthrough: coldRatio('pullthrough'), unit: '×', better: 'lower' });
    rows.push({ figure: 'cold pull as above, pullthrough with cache.prefetchBlobs: 3', peer: coldRatio('peer'), pullthrough: coldRatio('prefetch'), unit: '×', better: 'lower' });
    rows.push({ figure: 'upstream bytes per image byte, cold pull (prefetch too)', peer: coldBytes('peer'), pullthrough: Math.max(coldBytes('pullthrough'), coldBytes('prefetch')), unit: '×', better: 'lower' });

    }

    if (PHASES.has('warm')) {
      log('2. warm pulls…');
      await startPhase('warm pull');
      const warm: Record<string, number[]> = { peer: [], pullthrough: [] };
      for (let round = 0; round < ROUNDS; round++) {
        for (const [name, server] of Object.entries(servers)) {
          const pull = await timed(() => skopeoCopy(`${server.host}/library/big:1.0`, { tlsVerify: false }));
          await pull.value.cleanup();
          warm[name]!.push(pull.seconds);
        }
    }
    rows.push({ figure: `warm pull (median of ${ROUNDS})`, peer: median(warm['peer']!), pullthrough: median(warm['pullthrough']!), unit: 's', better: 'lower' });

    }

    if (PHASES.has('blob')) {
      log('3. cached blob throughput…');
      await startPhase('cached blob');
      const biggest = big.layers.reduce((a, b) => (a.bytes.length > b.bytes.length ? a : b));
      for (const clients of [1, 8]) {
        const rate: Record<string, number[]> = { peer: [], pullthrough: [] };
        for (let round = 0; round < ROUNDS; round++) {
          for (const [name, server] of Object.entries(servers)) {
            const run = await drainInChild(`${server.url}/v2/library/big/blobs/${biggest.digest}`, clients);
            rate[name]!.push(run.bytes / MiB / run.seconds);
          }
        }
        rows.push({ figure: `cached ${Math.round(biggest.bytes.length / MiB)} MiB blob, ${clients} client${clients > 1 ? 's' : ''} (aggregate, median of ${ROUNDS})`, peer: median(rate['peer']!), pullthrough: median(rate['pullthrough']!), unit: 'MiB/s', better: 'higher' });
    }

    }

    if (PHASES.has('manifests')) {
      log('4. manifest GETs per second…');
      await startPhase('manifests');
      await fetch(`${ptAlways.url}/v2/library/small/manifests/1.0`);
      const accept = { accept: OCI.manifest };
      // Each measurement gets a short warm-up of its own (JIT, caches) and a pause after the last
      // one, so no server is measured while another is still working off a backlog.
      const measure = async (url: string) => {
        await loadTest(url, { connections: 8, seconds: 2, headers: accept });
        await new Promise((r) => setTimeout(r, 1_000));
        return loadTest(url, { connections: 32, seconds: LOAD_SECONDS, headers: accept });
      };
      const byTag = { pt: await measure(`${pt.url}/v2/library/small/manifests/1.0`), peer: await measure(`${peer.url}/v2/library/small/manifests/1.0`) };
      const tagTtl0 = await measure(`${ptAlways.url}/v2/library/small/manifests/1.0`);
      const byDigest = { pt: await measure(`${pt.url}/v2/library/small/manifests/${small.digest}`), peer: await measure(`${peer.url}/v2/library/small/manifests/${small.digest}`) };
      rows.push({ figure: `manifest by tag, inside tagTtl (${byTag.pt.tool}, 32 conn.)`, peer: byTag.peer.requestsPerSecond, pullthrough: byTag.pt.requestsPerSecond, unit: 'req/s', better: 'higher' });
      rows.push({ figure: 'manifest by tag, tagTtl: 0 (a HEAD upstream each)', peer: byTag.peer.requestsPerSecond, pullthrough: tagTtl0.requestsPerSecond, unit: 'req/s', better: 'higher' });
      rows.push({ figure: 'manifest by digest', peer: byDigest.peer.requestsPerSecond, pullthrough: byDigest.pt.requestsPerSecond, unit: 'req/s', better: 'higher' });
      rows.push({ figure: 'manifest by tag, p99 latency', peer: byTag.peer.p99Ms, pullthrough: byTag.pt.p99Ms, unit: 'ms', better: 'lower' });

    }

    if (PHASES.has('misses')) {
      log('5. ten concurrent misses of one uncached blob…');
      await startPhase('10 misses');
      const layer = fresh.layers[0]!;
      for (const [name, server] of Object.entries(servers)) {
        const before = upstreamGets(new RegExp(layer.digest));
        const results = await Promise.all(Array.from({ length: 10 }, () => drain(`${server.url}/v2/library/fresh/blobs/${layer.digest}`)));
        if (results.some((r) => r.bytes !== layer.bytes.length)) throw new Error(`${name}: a client got a short blob`);
        // distribution's proxy may still be fetching for itself after its clients are served.
        await new Promise((r) => setTimeout(r, 2_000));
        const fetches = upstreamGets(new RegExp(layer.digest)) - before;
        const ttfb = results.map((r) => r.ttfbMs);
        const row = rows.find((r) => r.figure.startsWith('10 concurrent misses: upstream fetches'));
        if (row) row.pullthrough = fetches;
        else rows.push({ figure: '10 concurrent misses: upstream fetches', peer: fetches, pullthrough: NaN, unit: '', better: 'lower' });
        const ttfbRow = rows.find((r) => r.figure.startsWith('10 concurrent misses: slowest time to first byte'));
        if (ttfbRow) ttfbRow.pullthrough = Math.max(...ttfb);
        else rows.push({ figure: '10 concurrent misses: slowest time to first byte', peer: Math.max(...ttfb), pullthrough: NaN, unit: 'ms', better: 'lower' });
    }

    }

    if (PHASES.has('soak')) {
      log('6. peak memory…');
      await startPhase('soak');
      const beforeSoak = phasePeaks.reduce((m, p) => ({ peer: Math.max(m.peer, p.peer), pullthrough: Math.max(m.pullthrough, p.pullthrough) }), { peer: 0, pullthrough: 0 });
      rows.push({ figure: 'peak RSS before the soak', peer: beforeSoak.peer, pullthrough: beforeSoak.pullthrough, unit: 'MiB', better: 'lower' });

      log(`7. soak: ${SOAK_CLIENTS} clients for ${SOAK_SECONDS} s through pullthrough…`);
      const rssStart = await rssMiB(pt.pid);
      const deadline = Date.now() + SOAK_SECONDS * 1000;
      const latencies: number[] = [];
      let errors = 0;
      let next = 0;
      const allTargets = {
        tag: `${pt.url}/v2/library/small/manifests/1.0`,
        digest: `${pt.url}/v2/library/big/manifests/${big.digest}`,
        small: `${pt.url}/v2/library/small/blobs/${small.layers[0]!.digest}`,
        big: `${pt.url}/v2/library/big/blobs/${big.layers[0]!.digest}`,
      };
      const targets = Object.entries(allTargets)
        .filter(([kind]) => SOAK_MIX.has(kind))
        .map(([, url]) => url);
      const withMisses = SOAK_MIX.has('miss');
      const errorKinds = new Map<string, number>();
      await Promise.all(
        Array.from({ length: SOAK_CLIENTS }, async (_, client) => {
          for (let i = 0; Date.now() < deadline; i++) {
            // One request in ten is a blob nobody has asked for yet: a miss.
            const url = (targets.length === 0 || (withMisses && (client + i) % 10 === 0)) && next < soakBlobs.length ? `${pt.url}/v2/library/soak/blobs/${soakBlobs[next++]!.digest}` : targets[(client + i) % targets.length];
            if (url === undefined) break;
            const started = performance.now();
            try {
              await drain(url);
              latencies.push(performance.now() - started);
            } catch (err) {
              errors += 1;
              // What failed, without the URL's digest: a status, or a socket error's code.
              const kind = err instanceof Error ? ((err as NodeJS.ErrnoException).code ?? err.message.replace(/^.*: /, '')) : String(err);
              errorKinds.set(kind, (errorKinds.get(kind) ?? 0) + 1);
            }
          }
        }),
      );
      const rssEnd = await rssMiB(pt.pid);
      // Where the soak's memory sits, from pullthrough's own metrics: V8 heap, and Buffers outside it.
      const metricsResponse = await fetch(`${pt.url}/metrics`);
      const metricsText = metricsResponse.ok ? await metricsResponse.text() : '';
      // Node's process metrics are unprefixed (nodejs_*, process_*: src/metrics.ts).
      const gauge = (name: string) => Number(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(metricsText)?.[1] ?? NaN) / MiB;
      const soakLine = !metricsResponse.ok ? `/metrics answered ${metricsResponse.status}` : `V8 heap ${gauge('nodejs_heap_size_used_bytes').toFixed(0)} of ${gauge('nodejs_heap_size_total_bytes').toFixed(0)} MiB, external ${gauge('nodejs_external_memory_bytes').toFixed(0)} MiB`;
      rows.push({ figure: `soak: requests (${SOAK_CLIENTS} clients, ${SOAK_SECONDS} s)`, peer: undefined, pullthrough: latencies.length, unit: '', better: 'higher' });
      rows.push({ figure: 'soak: errors', peer: undefined, pullthrough: errors, unit: [...errorKinds].map(([kind, n]) => `${kind} × ${n}`).join(', '), better: 'lower' });
      rows.push({ figure: 'soak: p50 / p99 latency', peer: undefined, pullthrough: percentile(latencies, 50), unit: `ms / ${percentile(latencies, 99).toFixed(1)} ms`, better: 'lower' });
      rows.push({ figure: 'soak: RSS at start → end', peer: undefined, pullthrough: rssEnd, unit: `MiB (from ${rssStart.toFixed(0)})`, better: 'lower' });
      rows.push({ figure: 'soak: peak RSS', peer: undefined, pullthrough: await peakRssMiB(pt.pid), unit: 'MiB', better: 'lower' });
      soakMemory = soakLine;
    }
    await startPhase('');

    const fmt = (n: number | undefined) => (n === undefined || Number.isNaN(n) ? '–' : n >= 100 ? n.toFixed(0) : n >= 10 ? n.toFixed(1) : n.toFixed(2));
    const ratio = (r: Row) => (r.peer === undefined || r.peer === 0 || Number.isNaN(r.peer) ? '–' : `${(r.better === 'higher' ? r.pullthrough / r.peer : r.peer / r.pullthrough).toFixed(2)}x`);
    const machine = `${cpus().length} × ${cpus()[0]?.model.trim() ?? 'cpu'}, ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}`;
    const table = [
      `machine: ${machine}`,
      '',
      '| figure | peer (distribution proxy) | pullthrough | pullthrough better by |',
      '| --- | ---: | ---: | ---: |',
      ...rows.map((r) => `| ${r.figure} | ${fmt(r.peer)} | ${fmt(r.pullthrough)} ${r.unit} | ${ratio(r)} |`),
    ].join('\n');
    const peaks = ['', 'peak RSS by phase (MiB), and CPU seconds: phase | peer | pullthrough | peer CPU-s | pullthrough CPU-s', ...phasePeaks.map((p) => `  ${p.phase} | ${fmt(p.peer)} | ${fmt(p.pullthrough)} | ${fmt(p.peerCpuSeconds)} | ${fmt(p.pullthroughCpuSeconds)}`), `pullthrough at the soak's end: ${soakMemory}`].join('\n');
    process.stdout.write(`${table}\n${peaks}\n`);
    const file = path.join('bench', 'results', `${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
    await writeFile(file, JSON.stringify({ machine, date: new Date().toISOString(), rows, phasePeaks, soakMemory }, null, 2));
    log(`written to ${file}`);
    await peer.stop();
    await upstream.stop();
    closeDrainAgent();
  } finally {
    await Promise.all(daemons.map((d) => d.stop()));
    await rm(work, { recursive: true, force: true });
  }
}

await main();
