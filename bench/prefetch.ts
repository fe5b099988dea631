/*
 * cache.prefetchBlobs against a distant upstream: a distribution registry behind a proxy that adds
 * a round trip and caps each connection's rate (as a far registry or a CDN does), pulled cold with
 * skopeo through pullthrough with prefetch off and on, and directly through the same proxy.
 * Loopback only, bounded; prints the figures side by side.
 * Run: npm run build && node --import tsx bench/prefetch.ts   (BENCH_ROUNDS, BENCH_RATE_MIB, BENCH_RTT_MS)
 */
import { once } from 'node:events';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { skopeoCopy } from '../test/helpers/clients.js';
import { startDistribution } from '../test/helpers/distribution.js';
import { makeImage } from '../test/helpers/images.js';
import { freePort, startDaemon, waitUntil, type Daemon } from '../test/helpers/processes.js';

const ROUNDS = Number(process.env['BENCH_ROUNDS'] ?? 3);
const RATE = Number(process.env['BENCH_RATE_MIB'] ?? 40) * 2 ** 20;
const RTT_MS = Number(process.env['BENCH_RTT_MS'] ?? 20);

/** A proxy that delays each request by one round trip and sends each body at most RATE bytes/s. */
async function startDistantLink(target: string): Promise<{ url: string; close(): Promise<void> }> {
  const to = new URL(target);
  const server = createServer((req, res) => {
    setTimeout(() => {
      const upstream = request({ host: to.hostname, port: to.port, method: req.method, path: req.url, headers: { ...req.headers, host: to.host } }, async (response) => {
        res.writeHead(response.statusCode ?? 502, response.headers);
        const started = performance.now();
        let sent = 0;
        for await (const chunk of response as AsyncIterable<Buffer>) {
          sent += chunk.length;
          const due = (sent / RATE) * 1000 - (performance.now() - started);
          if (due > 0) await sleep(due);
          if (!res.write(chunk)) await once(res, 'drain');
        }
        res.end();
      });
      upstream.on('error', () => res.destroy());
      req.pipe(upstream);
    }, RTT_MS);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

const work = await mkdtemp(path.join(tmpdir(), 'pullthrough-prefetch-bench-'));
const daemons: Daemon[] = [];
const upstream = await startDistribution();
const link = await startDistantLink(upstream.url);
try {
  const startPullthrough = async (name: string, prefetch: number) => {
    const port = await freePort();
    await mkdir(path.join(work, name), { recursive: true });
    const config = path.join(work, `${name}.yaml`);
    await writeFile(config, `listen: 127.0.0.1:${port}\nlogLevel: error\nstorage: { root: ${path.join(work, name)} }\ncache: { prefetchBlobs: ${prefetch} }\nupstreams:\n  - { host: docker.io, url: "${link.url}", default: true }\n`);
    const daemon = startDaemon(process.execPath, ['--max-semi-space-size=4', 'dist/main.js', 'serve', '--config', config]);
    daemons.push(daemon);
    await waitUntil(async () => (await fetch(`http://127.0.0.1:${port}/healthz`)).ok, name);
    return `127.0.0.1:${port}`;
  };
  const targets = { direct: link.url.slice('http://'.length), off: await startPullthrough('off', 0), on: await startPullthrough('on', 3) };
  const seconds: Record<string, number[]> = { direct: [], off: [], on: [] };
  for (let round = 0; round < ROUNDS; round++) {
    // Six 16 MiB layers, new to every cache each round.
    const image = makeImage({ layerSizes: Array.from({ length: 6 }, () => 16 * 2 ** 20) });
    await upstream.push(`library/far-${round}`, '1.0', image);
    for (const [name, host] of Object.entries(targets)) {
      const started = performance.now();
      const pull = await skopeoCopy(`${host}/library/far-${round}:1.0`, { tlsVerify: false });
      seconds[name]!.push((performance.now() - started) / 1000);
      await pull.cleanup();
    }
  }
  const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
  process.stdout.write(
    [
      `upstream behind a ${RTT_MS} ms round trip and ${RATE / 2 ** 20} MiB/s per connection; cold skopeo pull of 6 × 16 MiB layers, median of ${ROUNDS}`,
      '| pull | seconds | × direct |',
      '| --- | ---: | ---: |',
      ...Object.entries(seconds).map(([name, s]) => `| ${name === 'direct' ? 'direct (through the same link)' : `pullthrough, prefetchBlobs ${name === 'on' ? 3 : 0}`} | ${median(s).toFixed(2)} | ${(median(s) / median(seconds['direct']!)).toFixed(2)} |`),
      '',
    ].join('\n'),
  );
} finally {
  await Promise.all(daemons.map((d) => d.stop()));
  await link.close();
  await upstream.stop();
  await rm(work, { recursive: true, force: true });
}
