import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import type request from 'supertest';
import type { RunningPullthrough } from './pullthrough.js';

/** Reads a response body as bytes, whatever its content type. */
export const binary = (r: request.Test) =>
  r.buffer(true).parse((res, cb) => {
    const chunks: Buffer[] = [];
    res.on('data', (c: Buffer) => chunks.push(c));
    res.on('end', () => cb(null, Buffer.concat(chunks)));
  });

/** A stand-in for an internal service (the cloud metadata service, a database): anything that reaches it has leaked. */
export async function startInternalService(): Promise<{ url: string; port: number; hits: () => number; close(): Promise<void> }> {
  let hits = 0;
  const server: Server = createServer((_req, res) => {
    hits += 1;
    res.writeHead(200, { 'content-type': 'application/json' }).end('{"AccessKeyId":"ASIA-SECRET"}');
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, port, hits: () => hits, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

/** A name in this machine's /etc/hosts that maps to loopback, other than localhost (refused by name alone). */
export function loopbackHostName(): string | undefined {
  try {
    for (const line of readFileSync('/etc/hosts', 'utf8').split('\n')) {
      const [address, ...names] = line.replace(/#.*/, '').trim().split(/\s+/);
      if (address !== '127.0.0.1' && address !== '127.0.1.1') continue;
      const name = names.find((n) => /^[a-z0-9-]+$/i.test(n) && !/localhost/i.test(n));
      if (name) return name;
    }
  } catch {
    // No hosts file: callers skip what needs one.
  }
  return undefined;
}

/** Waits until no blob fill runs: a client has its last byte a moment before the fill is indexed. */
export async function fillsSettled(cache: RunningPullthrough): Promise<void> {
  for (let i = 0; i < 500; i++) {
    if ((await cache.app.metrics.fillsInFlight.get()).values.every((v) => v.value === 0)) return;
    await sleep(10);
  }
  throw new Error('fills did not settle');
}
