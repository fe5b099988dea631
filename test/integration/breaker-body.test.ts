import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startFakeUpstream, type FakeUpstream } from '../fakes/fake-upstream.js';
import { makeRawBlob } from '../helpers/images.js';
import { startPullthrough, type RunningPullthrough } from '../helpers/pullthrough.js';

describe('the circuit breaker counts bodies that break off, not only failed answers', () => {
  let upstream: FakeUpstream;
  let cache: RunningPullthrough;
  before(async () => {
    upstream = await startFakeUpstream();
    cache = await startPullthrough({ upstreams: [{ host: 'docker.io', url: upstream.url, default: true, breaker: { failures: 3, openFor: '1m' } }] });
  });
  after(async () => {
    await cache.close();
    await upstream.close();
  });

  it('opens after consecutive bodies cut mid-way, so the next client hears at once', async () => {
    const blobs = Array.from({ length: 4 }, () => makeRawBlob(256 * 1024));
    for (const blob of blobs.slice(0, 3)) {
      upstream.addBlob(blob);
      // Cut every time, and not resumable: each download fails in its body, after a 200.
      upstream.setFault(blob.digest, { type: 'drop', afterBytes: 1024 });
      const res = await fetch(`${cache.url}/v2/library/app/blobs/${blob.digest}`).then(async (r) => ({ status: r.status, ok: await r.arrayBuffer().then(() => true, () => false) }));
      assert.ok(res.status === 503 || !res.ok, `cut download ${res.status}`);
    }
    const last = blobs[3]!;
    upstream.addBlob(last);
    const before = upstream.requests.length;
    const res = await fetch(`${cache.url}/v2/library/app/blobs/${last.digest}`);
    assert.equal(res.status, 503);
    assert.match(JSON.stringify(await res.json()), /circuit breaker open/);
    assert.equal(upstream.requests.length, before, 'not contacted while the breaker is open');
  });
});
