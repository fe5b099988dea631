import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import net from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';
import { request as httpGet } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { startFakeUpstream, type FakeUpstream } from '../fakes/fake-upstream.js';
import { makeImage, type ImageManifest } from '../helpers/images.js';
import { startPullthrough, type RunningPullthrough } from '../helpers/pullthrough.js';

/** A GET from a chosen loopback source address (all of 127/8 is loopback on Linux): one client per address. */
function getFrom(url: string, localAddress: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string; bytes: number }> {
  return new Promise((resolve, reject) => {
    const req = httpGet(url, { localAddress, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => {
        const body = Buffer.concat(chunks);
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: body.length < 65_536 ? body.toString() : '', bytes: body.length });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

const basic = (username: string, password: string) => `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`;

describe('token endpoint under abuse', () => {
  let hub: FakeUpstream;
  let cache: RunningPullthrough;
  let image: ImageManifest;

  before(async () => {
    hub = await startFakeUpstream();
    image = makeImage({ layerSizes: [16] });
    hub.addImage('library/app', '1', image);
    cache = await startPullthrough({ upstreams: [{ host: 'docker.io', url: hub.url, default: true }], server: { tokenBurst: 20, tokenRatePerSecond: 1, tokenMemoryBytes: '1MiB' } });
  });
  after(async () => {
    await cache.close();
    await hub.close();
  });

  it('refuses credentials over 4 KiB with 400 and an OCI error', async () => {
    const res = await getFrom(`${cache.url}/_pullthrough/token`, '127.0.0.10', { authorization: basic('mallory', 'x'.repeat(4097)) });
    assert.equal(res.status, 400);
    assert.equal((JSON.parse(res.body) as { errors: Array<{ code: string }> }).errors[0]?.code, 'SIZE_INVALID');
  });

  it('rate-limits issuance per address with 429 and Retry-After, other addresses unaffected; a flood does not cost alice her token', async () => {
    const alice = await getFrom(`${cache.url}/_pullthrough/token`, '127.0.0.20', { authorization: basic('alice', 'secret') });
    const token = (JSON.parse(alice.body) as { token: string }).token;
    const manifest = `${cache.url}/v2/library/app/manifests/1`;
    assert.equal((await getFrom(manifest, '127.0.0.20', { authorization: `Bearer ${token}` })).status, 200);

    const statuses: number[] = [];
    let retryAfter: string | undefined;
    // Mallory from one address: the bucket's burst, then 429s.
    for (let i = 0; i < 60; i++) {
      const res = await getFrom(`${cache.url}/_pullthrough/token`, '127.0.0.30', { authorization: basic(`m${i}`, 'p'.repeat(2048)) });
      statuses.push(res.status);
      if (res.status === 429) retryAfter ??= String(res.headers['retry-after']);
    }
    assert.ok(statuses.filter((s) => s === 200).length <= 25, `200s: ${statuses.filter((s) => s === 200).length}`);
    assert.ok(statuses.filter((s) => s === 429).length >= 35);
    assert.ok(Number(retryAfter) >= 1, `Retry-After: ${retryAfter}`);
    // Mallory from many addresses (each within its burst), 2 KB passwords: more sessions than 1 MiB holds.
    for (let a = 40; a < 100; a++) {
      await Promise.all(Array.from({ length: 10 }, (_, i) => getFrom(`${cache.url}/_pullthrough/token`, `127.0.0.${a}`, { authorization: basic(`m${a}-${i}`, 'p'.repeat(2048)) })));
      if (a % 10 === 0) assert.equal((await getFrom(manifest, '127.0.0.20', { authorization: `Bearer ${token}` })).status, 200);
    }
    assert.equal((await getFrom(`${cache.url}/_pullthrough/token`, '127.0.0.21')).status, 200, 'another address still gets a token');
    assert.equal((await getFrom(manifest, '127.0.0.20', { authorization: `Bearer ${token}` })).status, 200, "alice's token still resolves");
  });
});

/** Open fds of this process (the server runs in it): sockets the server holds count here. */
function openFds(): number {
  return readdirSync('/proc/self/fd').length;
}

/** Resolves once `check` holds, polling; rejects after `withinMs` (a bound on the test, not a speed claim). */
async function eventually(check: () => boolean | Promise<boolean>, withinMs: number, what: string): Promise<void> {
  const deadline = Date.now() + withinMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`not within ${withinMs} ms: ${what}`);
    await delay(50);
  }
}

interface Attacker {
  readonly socket: net.Socket;
  /** Set when the server closed the connection (end or reset). */
  closedAt?: number;
  answer: string;
  timer?: NodeJS.Timeout;
}

/** A raw client; `isStubborn` ones keep their side open after the server ends its own (as an attacker would). */
function attack(port: number, first: string, trickle?: string, isStubborn = false): Attacker {
  const socket = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
  const attacker: Attacker = { socket, answer: '' };
  socket.on('data', (chunk: Buffer) => (attacker.answer += chunk.toString('latin1')));
  const closed = () => {
    attacker.closedAt ??= Date.now();
    clearInterval(attacker.timer);
    if (!isStubborn) socket.destroy();
  };
  socket.on('end', closed);
  socket.on('close', closed);
  socket.on('error', closed);
  socket.write(first);
  if (trickle) attacker.timer = setInterval(() => socket.writable && socket.write(trickle), 100);
  return attacker;
}

describe('server timeouts and connection bound', () => {
  let hub: FakeUpstream;
  let cache: RunningPullthrough;
  let port: number;

  before(async () => {
    hub = await startFakeUpstream();
    cache = await startPullthrough({ upstreams: [{ host: 'docker.io', url: hub.url, default: true }], server: { headersTimeout: '500ms', requestTimeout: '1s', maxConnections: 64 } });
    port = Number(cache.host.split(':')[1]);
  });
  after(async () => {
    await cache.close();
    await hub.close();
  });

  it('destroys sockets that send partial headers or trickle a body, and the fds come back', async () => {
    await delay(200);
    const baseline = openFds();
    const attackers = [
      ...Array.from({ length: 25 }, () => attack(port, 'GET /v2/ HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ', 'a')),
      ...Array.from({ length: 25 }, () => attack(port, 'GET /v2/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100000\r\n\r\n', 'b')),
    ];
    await eventually(() => attackers.every((a) => a.closedAt !== undefined), 15_000, `${attackers.filter((a) => a.closedAt === undefined).length} of 50 attackers still connected`);
    await eventually(() => openFds() <= baseline, 5_000, `fds ${openFds()} vs baseline ${baseline}`);
    // The partial headers got a 408 (a client that cannot send its request in time learns why).
    assert.ok(attackers.slice(0, 25).some((a) => a.answer.startsWith('HTTP/1.1 408')), attackers[0]?.answer);
    assert.equal(await new Promise<number>((resolve) => cache.app.server.getConnections((_err, count) => resolve(count))), 0);
  });

  it('answers a malformed request with 400 and destroys the socket instead of half-closing it', async () => {
    const baseline = openFds();
    const attackers = Array.from({ length: 20 }, () => attack(port, 'NOT HTTP AT ALL\r\n\r\n', undefined, true));
    await eventually(() => attackers.every((a) => a.closedAt !== undefined), 10_000, 'malformed requests still connected');
    assert.ok(attackers.every((a) => a.answer.startsWith('HTTP/1.1 400')));
    // The clients' own sockets stay open; the server's must be gone (a half-closed one keeps its fd).
    await eventually(() => openFds() <= baseline + attackers.length, 5_000, `fds ${openFds()} vs baseline ${baseline} + ${attackers.length} client sockets`);
    for (const a of attackers) a.socket.destroy();
  });

  it('holds at most server.maxConnections connections', async () => {
    const attackers = Array.from({ length: 100 }, () => attack(port, 'GET /v2/ HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: '));
    await delay(300);
    const held = await new Promise<number>((resolve) => cache.app.server.getConnections((_err, count) => resolve(count)));
    assert.ok(held <= 64, `${held} connections held`);
    assert.ok(attackers.filter((a) => a.closedAt !== undefined).length >= 36, 'the extra connections were refused');
    for (const a of attackers) a.socket.destroy();
    // A well-behaved client is served once the flood is gone.
    await eventually(async () => (await fetch(`${cache.url}/healthz`).catch(() => undefined))?.status === 200, 5_000, 'healthz after the flood');
  });
});

describe('a client that stops reading a blob', () => {
  let hub: FakeUpstream;
  let cache: RunningPullthrough;
  let port: number;
  let image: ImageManifest;

  before(async () => {
    hub = await startFakeUpstream();
    // Far more than loopback's socket buffers hold, so a client that reads nothing stalls the send.
    image = makeImage({ layerSizes: [32 * 2 ** 20] });
    hub.addImage('library/big', '1', image);
    cache = await startPullthrough({ upstreams: [{ host: 'docker.io', url: hub.url, default: true }], server: { sendIdleTimeout: '300ms', headersTimeout: '500ms', requestTimeout: '1s' } });
    port = Number(cache.host.split(':')[1]);
  });
  after(async () => {
    await cache.close();
    await hub.close();
  });

  const connections = () => new Promise<number>((resolve) => cache.app.server.getConnections((_err, count) => resolve(count)));

  async function stalledPull(): Promise<void> {
    await delay(100);
    const baseline = openFds();
    const socket = net.connect(port, '127.0.0.1');
    socket.pause();
    socket.on('error', () => undefined);
    socket.write(`GET /v2/library/big/blobs/${image.layers[0]!.digest} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
    // The answer has started (and the client then reads no more than its stream buffer).
    await new Promise((resolve) => socket.once('readable', resolve));
    assert.equal(await connections(), 1);
    // Dropped by the server: no connection left, and its fds (socket, blob file) are back.
    await eventually(async () => (await connections()) === 0, 15_000, 'the stalled connection is still held');
    await eventually(() => openFds() <= baseline + 1, 5_000, `fds ${openFds()} vs baseline ${baseline} + the client's socket`);
    socket.destroy();
  }

  it('is dropped while the blob is being filled', async () => {
    await stalledPull();
  });

  it('is not confused with a slow download: a body taking longer than every timeout arrives whole', async () => {
    const slow = makeImage({ layerSizes: [20_000] });
    hub.addImage('library/slow', '1', slow);
    const layer = slow.layers[0]!;
    // About 2 s of body, in chunks 100 ms apart: longer than requestTimeout (1s) and sendIdleTimeout (300ms) together.
    hub.setFault(layer.digest, { type: 'slow', chunkBytes: Math.ceil(layer.bytes.length / 20), delayMs: 100 });
    const res = await getFrom(`${cache.url}/v2/library/slow/blobs/${layer.digest}`, '127.0.0.1');
    assert.equal(res.status, 200);
    assert.equal(res.bytes, layer.bytes.length);
  });

  it('is dropped when the blob is served from the cache; a client that reads gets every byte', async () => {
    // Without keep-alive, so the server holds no connection of ours afterwards.
    const full = await getFrom(`${cache.url}/v2/library/big/blobs/${image.layers[0]!.digest}`, '127.0.0.1');
    assert.equal(full.status, 200);
    assert.equal(full.bytes, image.layers[0]!.bytes.length);
    await stalledPull();
  });
});
