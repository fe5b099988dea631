import assert from 'node:assert/strict';
import { request as httpGet } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { startFakeUpstream, type FakeUpstream } from '../fakes/fake-upstream.js';
import { makeImage, type ImageManifest } from '../helpers/images.js';
import { startPullthrough, type RunningPullthrough } from '../helpers/pullthrough.js';

/** A GET from a chosen loopback source address (all of 127/8 is loopback on Linux): one client per address. */
function getFrom(url: string, localAddress: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpGet(url, { localAddress, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString() }));
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
