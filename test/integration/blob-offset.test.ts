import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { text } from 'node:stream/consumers';
import { after, before, describe, it } from 'node:test';
import { parseConfig } from '../../src/config/load-config.js';
import { createSilentLogger } from '../../src/logger.js';
import { createMetrics } from '../../src/metrics.js';
import { createUpstream, type Upstream } from '../../src/upstream/upstream-client.js';
import { UpstreamError } from '../../src/upstream/upstream-error.js';
import { startFakeUpstream, type FakeUpstream } from '../fakes/fake-upstream.js';
import { makeRawBlob } from '../helpers/images.js';

/** A client as app.ts makes one for a listed upstream: the config's own shape, whatever its keys are named. */
function clientFor(url: string): Upstream {
  const settings = parseConfig({ upstreams: [{ host: 'docker.io', url, timeouts: { connect: '2s', headers: '2s', bodyIdle: '2s' }, breaker: { failures: 50 } }] }, {}, 'test').upstreams[0]!;
  return createUpstream({ ...settings, url, isUrlTrusted: true, allowPrivate: [], userAgent: 'test' }, { metrics: createMetrics({ withDefaultMetrics: false }), logger: createSilentLogger(), now: Date.now });
}

async function bytesOf(body: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of body) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

describe('Upstream.getBlob from an offset', () => {
  let fake: FakeUpstream;
  let upstream: Upstream;
  const blob = makeRawBlob(50_000);

  before(async () => {
    fake = await startFakeUpstream();
    fake.addBlob(blob);
    upstream = clientFor(fake.url);
  });
  after(async () => {
    await upstream.close();
    await fake.close();
  });

  it('asks for the rest with Range and gives exactly those bytes', async () => {
    const { size, body } = await upstream.getBlob('library/app', blob.digest, { offset: 20_000 });
    assert.equal(size, 30_000, 'size is what is left');
    assert.ok((await bytesOf(body)).equals(blob.bytes.subarray(20_000)));
    assert.equal(fake.requests.at(-1)?.headers.range, 'bytes=20000-');
  });

  it('refuses a 200 that ignored the Range', async () => {
    // The drop fault answers 200 with the whole body, whatever the Range.
    fake.setFault(blob.digest, { type: 'drop', afterBytes: 10_000, once: true });
    try {
      await assert.rejects(upstream.getBlob('library/app', blob.digest, { offset: 5_000 }), (err: unknown) => err instanceof UpstreamError && err.kind === 'invalid');
    } finally {
      fake.setFault(blob.digest, undefined);
    }
  });

  it('resumes a cut body from the offset plus what arrived', async () => {
    const ranges: string[] = [];
    // Honours Range, but cuts its first answer after 10,000 bytes.
    const cutting = createServer((req, res) => {
      const from = Number(/^bytes=(\d+)-$/.exec(req.headers.range ?? '')?.[1] ?? 0);
      ranges.push(req.headers.range ?? '');
      res.writeHead(206, { 'content-range': `bytes ${from}-49999/50000`, 'content-length': String(50_000 - from) });
      if (ranges.length > 1) return void res.end(blob.bytes.subarray(from));
      res.write(blob.bytes.subarray(from, from + 10_000), () => setTimeout(() => res.socket?.destroy(), 20));
    });
    cutting.listen(0, '127.0.0.1');
    await once(cutting, 'listening');
    const client = clientFor(`http://127.0.0.1:${(cutting.address() as AddressInfo).port}`);
    try {
      const { body } = await client.getBlob('library/app', blob.digest, { offset: 5_000 });
      assert.ok((await bytesOf(body)).equals(blob.bytes.subarray(5_000)));
      assert.deepEqual(ranges, ['bytes=5000-', 'bytes=15000-']);
    } finally {
      await client.close();
      cutting.closeAllConnections();
      await new Promise((resolve) => cutting.close(resolve));
    }
  });

  it('refuses a 206 for another range', async () => {
    fake.setFault(blob.digest, { type: 'raw', status: 206, headers: { 'content-range': `bytes 0-49999/50000` }, body: blob.bytes });
    try {
      await assert.rejects(upstream.getBlob('library/app', blob.digest, { offset: 100 }), (err: unknown) => err instanceof UpstreamError && err.kind === 'invalid');
    } finally {
      fake.setFault(blob.digest, undefined);
    }
  });

  it('still answers a 404 as not found, and a whole blob without an offset', async () => {
    await assert.rejects(upstream.getBlob('library/app', `sha256:${'0'.repeat(64)}`, { offset: 10 }), (err: unknown) => err instanceof UpstreamError && err.isNotFound);
    const whole = await upstream.getBlob('library/app', blob.digest);
    assert.equal(whole.size, 50_000);
    assert.equal(await text(whole.body).then((t) => t.length > 0), true);
  });
});
