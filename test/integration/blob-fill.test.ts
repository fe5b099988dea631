import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readdir, rm, truncate } from 'node:fs/promises';
import path from 'node:path';
import { after, before, beforeEach, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { startFakeUpstream, type FakeUpstream } from '../fakes/fake-upstream.js';
import { makeRawBlob, type Blob } from '../helpers/images.js';
import { metricValue, startPullthrough, type RunningPullthrough } from '../helpers/pullthrough.js';

const REPO = 'library/app';

async function getBytes(url: string, init: RequestInit = {}): Promise<{ status: number; headers: Headers; body: Buffer }> {
  const response = await fetch(url, init);
  return { status: response.status, headers: response.headers, body: Buffer.from(await response.arrayBuffer()) };
}

async function waitFor(check: () => Promise<boolean> | boolean, what: string, limitMs = 10_000): Promise<void> {
  const deadline = Date.now() + limitMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

function blobPath(root: string, digest: string): string {
  const hex = digest.slice('sha256:'.length);
  return path.join(root, 'blobs', 'sha256', hex.slice(0, 2), hex);
}

describe('blob fill', () => {
  let upstream: FakeUpstream;
  let cache: RunningPullthrough;
  let blob: Blob;
  let blobUrl: string;

  before(async () => {
    upstream = await startFakeUpstream();
  });
  after(async () => {
    await upstream.close();
  });
  beforeEach(async () => {
    await cache?.close();
    cache = await startPullthrough({ upstreams: [{ host: 'docker.io', url: upstream.url, default: true }] });
    blob = makeRawBlob(3 * 1024 * 1024 + 17);
    upstream.addBlob(blob);
    blobUrl = `${cache.url}/v2/${REPO}/blobs/${blob.digest}`;
  });
  after(async () => {
    await cache?.close();
  });

  const upstreamGets = () => upstream.count('GET', `/v2/${REPO}/blobs/${blob.digest}`);

  it('streams a miss, stores it, and serves the next request without the upstream', async () => {
    const first = await getBytes(blobUrl);
    assert.equal(first.status, 200);
    assert.ok(first.body.equals(blob.bytes));
    assert.equal(first.headers.get('docker-content-digest'), blob.digest);
    assert.equal(first.headers.get('content-length'), String(blob.bytes.length));
    await waitFor(() => existsSync(blobPath(cache.storageRoot, blob.digest)), 'the commit');

    const second = await getBytes(blobUrl);
    assert.ok(second.body.equals(blob.bytes));
    assert.equal(upstreamGets(), 1);
    assert.equal(await metricValue(cache.url, 'pullthrough_cache_lookups_total', { kind: 'blob', result: 'hit' }), 1);
  });

  it('makes one upstream GET for 10 concurrent requests, all of which get the exact bytes', async () => {
    let release!: () => void;
    upstream.setFault(blob.digest, { type: 'gate', beforeBytes: 1024 * 1024, release: new Promise((r) => (release = r)) });
    const responses = Array.from({ length: 10 }, () => getBytes(blobUrl));
    await waitFor(async () => (await metricValue(cache.url, 'pullthrough_cache_lookups_total', { kind: 'blob', result: 'joined' })) === 9, '9 joiners');
    release();
    const results = await Promise.all(responses);
    upstream.setFault(blob.digest, undefined);
    for (const result of results) {
      assert.equal(result.status, 200);
      assert.ok(result.body.equals(blob.bytes), 'every client gets the exact bytes');
    }
    assert.equal(upstreamGets(), 1);
  });

  it('serves a range of a blob still being filled once those bytes are on disk', async () => {
    let release!: () => void;
    upstream.setFault(blob.digest, { type: 'gate', beforeBytes: 2 * 1024 * 1024, release: new Promise((r) => (release = r)) });
    const whole = getBytes(blobUrl);
    const ranged = await getBytes(blobUrl, { headers: { range: 'bytes=100-1099' } });
    assert.equal(ranged.status, 206);
    assert.equal(ranged.headers.get('content-range'), `bytes 100-1099/${blob.bytes.length}`);
    assert.ok(ranged.body.equals(blob.bytes.subarray(100, 1100)));
    release();
    assert.ok((await whole).body.equals(blob.bytes));
    upstream.setFault(blob.digest, undefined);
    assert.equal(upstreamGets(), 1);
  });

  it('holds back the last byte until the digest is verified', async () => {
    let release!: () => void;
    // Every byte sent, but a chunked body not yet ended: the fill cannot verify it yet. (With a
    // Content-Length the corrupt-body test below covers the same hold-back.)
    upstream.setFault(blob.digest, { type: 'gate', beforeBytes: blob.bytes.length, noLength: true, release: new Promise((r) => (release = r)) });
    const response = await fetch(blobUrl);
    const reader = response.body!.getReader();
    let received = 0;
    await waitFor(async () => {
      const { value } = await reader.read();
      received += value?.length ?? 0;
      return received >= blob.bytes.length - 1;
    }, 'all but the last byte');
    await sleep(200);
    assert.equal(received, blob.bytes.length - 1, 'the last byte waits for verification');
    release();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      received += value.length;
    }
    assert.equal(received, blob.bytes.length);
    upstream.setFault(blob.digest, undefined);
  });

  it('never completes a response whose bytes do not match the digest, and stores nothing', async () => {
    upstream.setFault(blob.digest, { type: 'corrupt' });
    await assert.rejects(getBytes(blobUrl), 'the response must be cut, not completed');
    await waitFor(async () => (await metricValue(cache.url, 'pullthrough_fills_in_flight')) === 0, 'the fill to end');
    assert.equal(existsSync(blobPath(cache.storageRoot, blob.digest)), false);
    assert.deepEqual(await readdir(path.join(cache.storageRoot, 'tmp')), []);
    assert.equal(await metricValue(cache.url, 'pullthrough_digest_mismatches_total'), 1);

    upstream.setFault(blob.digest, undefined);
    const retry = await getBytes(blobUrl);
    assert.ok(retry.body.equals(blob.bytes), 'the next request starts a fresh fill');
    assert.equal(upstreamGets(), 2);
  });

  it('aborts every client when the upstream drops mid-body, then fills afresh', async () => {
    upstream.setFault(blob.digest, { type: 'drop', afterBytes: 1024 * 1024 });
    const results = await Promise.allSettled([getBytes(blobUrl), getBytes(blobUrl)]);
    for (const result of results) {
      // A client that had no byte yet when the fill failed (a busy machine) still gets an OCI error: a 503.
      if (result.status === 'fulfilled') assert.equal(result.value.status, 503, 'never a complete response');
    }
    // A client arriving after the first fill failed starts its own (which drops too): wait for both.
    await waitFor(async () => (await metricValue(cache.url, 'pullthrough_fills_in_flight')) === 0 && (await readdir(path.join(cache.storageRoot, 'tmp'))).length === 0, 'the fills to end and leave tmp/ empty');
    assert.equal(existsSync(blobPath(cache.storageRoot, blob.digest)), false);

    upstream.setFault(blob.digest, undefined);
    assert.ok((await getBytes(blobUrl)).body.equals(blob.bytes));
  });

  it('finishes the fill after its only client has gone', async () => {
    upstream.setFault(blob.digest, { type: 'slow', chunkBytes: 256 * 1024, delayMs: 20 });
    const controller = new AbortController();
    const response = await fetch(blobUrl, { signal: controller.signal });
    await response.body!.getReader().read();
    controller.abort();
    await waitFor(() => existsSync(blobPath(cache.storageRoot, blob.digest)), 'the fill to commit');
    upstream.setFault(blob.digest, undefined);
    assert.ok((await getBytes(blobUrl)).body.equals(blob.bytes));
    assert.equal(upstreamGets(), 1);
  });

  it('verifies and serves a body the upstream sends without Content-Length', async () => {
    upstream.setFault(blob.digest, { type: 'no-length' });
    const first = await getBytes(blobUrl);
    assert.ok(first.body.equals(blob.bytes));
    upstream.setFault(blob.digest, undefined);
    await waitFor(() => existsSync(blobPath(cache.storageRoot, blob.digest)), 'the commit');
    const second = await getBytes(blobUrl, { method: 'HEAD' });
    assert.equal(second.headers.get('content-length'), String(blob.bytes.length));
  });

  it('answers ranges of cached blobs with 206, and 416 beyond the end', async () => {
    await getBytes(blobUrl);
    const size = blob.bytes.length;
    const resume = await getBytes(blobUrl, { headers: { range: `bytes=${size - 1000}-` } });
    assert.equal(resume.status, 206);
    assert.equal(resume.headers.get('content-range'), `bytes ${size - 1000}-${size - 1}/${size}`);
    assert.ok(resume.body.equals(blob.bytes.subarray(size - 1000)));
    const beyond = await getBytes(blobUrl, { headers: { range: `bytes=${size}-` } });
    assert.equal(beyond.status, 416);
    assert.equal(beyond.headers.get('content-range'), `bytes */${size}`);
    assert.equal(JSON.parse(beyond.body.toString()).errors[0].code, 'RANGE_INVALID');
  });

  it('answers HEAD of an uncached blob from the upstream without filling', async () => {
    const head = await getBytes(blobUrl, { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.headers.get('content-length'), String(blob.bytes.length));
    assert.equal(upstreamGets(), 0);
  });
  it('gives 30 concurrent readers of a cached blob, whole and in ranges, exactly their bytes', async () => {
    // Responses share a pool of reused buffers: any reuse before the socket let go would show here.
    await getBytes(blobUrl);
    const size = blob.bytes.length;
    const asks = Array.from({ length: 30 }, (_, i) => (i % 3 === 0 ? { start: (i * 99_991) % size, end: size - 1 - i } : undefined));
    const answers = await Promise.all(asks.map((range) => getBytes(blobUrl, range ? { headers: { range: `bytes=${range.start}-${range.end}` } } : {})));
    answers.forEach((answer, i) => {
      const range = asks[i];
      assert.equal(answer.status, range ? 206 : 200);
      assert.ok(answer.body.equals(range ? blob.bytes.subarray(range.start, range.end + 1) : blob.bytes), `reader ${i} got other bytes`);
    });
    assert.equal(upstreamGets(), 1);
  });

  it('serves a blob whose file vanished between lookup and open (eviction, gc) by filling it again', async () => {
    await getBytes(blobUrl);
    // Indexed only once the fill has ended (after the client's last byte).
    await waitFor(async () => (await metricValue(cache.url, 'pullthrough_fills_in_flight')) === 0, 'the fill to commit');
    await rm(blobPath(cache.storageRoot, blob.digest));
    const healed = await getBytes(blobUrl);
    assert.equal(healed.status, 200);
    assert.ok(healed.body.equals(blob.bytes));
    assert.equal(upstreamGets(), 2);
    await waitFor(() => existsSync(blobPath(cache.storageRoot, blob.digest)), 'the new commit');
    assert.ok((await getBytes(blobUrl)).body.equals(blob.bytes));
    assert.equal(upstreamGets(), 2, 'cached again');
  });
  it('cuts the connection when a cached file is shorter than its indexed size, never a short 200', async () => {
    await getBytes(blobUrl);
    await waitFor(async () => (await metricValue(cache.url, 'pullthrough_fills_in_flight')) === 0, 'the fill to commit');
    await truncate(blobPath(cache.storageRoot, blob.digest), 1000);
    await assert.rejects(getBytes(blobUrl), 'the body must not end cleanly');
  });
});
