import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { after, afterEach, before, describe, it } from 'node:test';
import { startFakeUpstream, type FakeUpstream } from '../fakes/fake-upstream.js';
import { makeRawBlob } from '../helpers/images.js';
import { startPullthrough, type RunningPullthrough } from '../helpers/pullthrough.js';

/** GETs a URL with node:http and says whether the body arrived whole, with what it got. */
function download(url: string): Promise<{ status: number; body: Buffer; isComplete: boolean }> {
  return new Promise((resolve) => {
    const req = httpRequest(url, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks), isComplete: true }));
      res.on('error', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks), isComplete: false }));
      res.on('aborted', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks), isComplete: false }));
    });
    req.on('error', () => resolve({ status: 0, body: Buffer.alloc(0), isComplete: false }));
    req.end();
  });
}

describe('a blob download cut by the network resumes with Range', () => {
  let upstream: FakeUpstream;
  let cache: RunningPullthrough;
  before(async () => {
    upstream = await startFakeUpstream();
    cache = await startPullthrough({ upstreams: [{ host: 'docker.io', url: upstream.url, default: true }] });
  });
  after(async () => {
    await cache.close();
    await upstream.close();
  });
  afterEach(() => {
    upstream.requests.length = 0;
  });

  it('resumes where the upstream connection broke, verifies the whole digest, and commits it', async () => {
    const blob = makeRawBlob(3 * 2 ** 20);
    upstream.addBlob(blob);
    upstream.setFault(blob.digest, { type: 'drop', afterBytes: 2 ** 20, once: true });
    const res = await download(`${cache.url}/v2/library/app/blobs/${blob.digest}`);
    assert.equal(res.status, 200);
    assert.ok(res.isComplete);
    assert.ok(res.body.equals(blob.bytes), 'the client got the exact bytes');
    const gets = upstream.requests.filter((r) => r.method === 'GET' && r.path.endsWith(blob.digest));
    assert.equal(gets.length, 2);
    assert.match(String(gets[1]?.headers.range), /^bytes=[1-9]\d*-\d*$/);
    assert.equal(gets[1]?.headers['if-match'], `"${blob.digest}"`, 'only the same object is resumed');
    const again = await download(`${cache.url}/v2/library/app/blobs/${blob.digest}`);
    assert.ok(again.body.equals(blob.bytes));
    assert.equal(upstream.requests.filter((r) => r.method === 'GET' && r.path.endsWith(blob.digest)).length, 2, 'committed: served from the cache');
  });

  it('gives up cleanly when the upstream cannot resume: the client is cut, nothing is committed', async () => {
    const blob = makeRawBlob(2 ** 20);
    upstream.addBlob(blob);
    // Dropped every time, and a Range request is answered 200 from the start: not resumable.
    upstream.setFault(blob.digest, { type: 'drop', afterBytes: 2 ** 19 });
    const res = await download(`${cache.url}/v2/library/app/blobs/${blob.digest}`);
    assert.equal(res.isComplete && res.body.equals(blob.bytes), false);
    upstream.setFault(blob.digest, undefined);
    const again = await download(`${cache.url}/v2/library/app/blobs/${blob.digest}`);
    assert.ok(again.body.equals(blob.bytes));
    assert.ok(upstream.requests.filter((r) => r.method === 'GET' && r.path.endsWith(blob.digest) && r.headers.range === undefined).length >= 2, 'fetched again: nothing half-done was kept');
  });
});
