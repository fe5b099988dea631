import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import request from 'supertest';
import { startFakeUpstream, type FakeUpstream } from '../fakes/fake-upstream.js';
import { makeImage } from '../helpers/images.js';
import { startPullthrough, type RunningPullthrough } from '../helpers/pullthrough.js';

describe('upstream exchanges other than blob bodies have an overall deadline; token fetches are shared', () => {
  let upstream: FakeUpstream;
  let cache: RunningPullthrough;
  const image = makeImage({ layerSizes: [10] });
  before(async () => {
    upstream = await startFakeUpstream({ bearer: true });
    upstream.addImage('library/app', '1.0', image);
    upstream.addImage('library/slow', '1.0', makeImage({ layerSizes: [10] }));
    // A byte every 100 ms never trips the 30 s body-idle timeout: only the overall deadline ends it.
    upstream.setFault('library/slow:1.0', { type: 'slow', chunkBytes: 1, delayMs: 100 });
    cache = await startPullthrough({ upstreams: [{ host: 'docker.io', url: upstream.url, default: true, timeouts: { total: '1s' } }] });
  });
  after(async () => {
    await cache.close();
    await upstream.close();
  });

  it('ends a manifest that trickles in forever with a 503, not a hung client', async () => {
    const res = await request(cache.url).get('/v2/library/slow/manifests/1.0');
    assert.equal(res.status, 503);
    assert.equal(res.body.errors[0].code, 'UNAVAILABLE');
    assert.match(res.body.errors[0].message, /timed out/);
  });

  it('fetches one token for concurrent requests of one scope and identity', async () => {
    const tokens = () => upstream.count('GET', '/token');
    const before = tokens();
    upstream.setFault('library/app:1.0', { type: 'delay', ms: 200 });
    const answers = await Promise.all(Array.from({ length: 8 }, (_, i) => request(cache.url).get(`/v2/library/app/manifests/${i % 2 ? '1.0' : image.digest}`)));
    for (const res of answers) assert.equal(res.status, 200);
    assert.equal(tokens() - before, 1);
  });
});
