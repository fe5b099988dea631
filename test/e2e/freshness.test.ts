import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import request from 'supertest';
import { startCountingProxy, type CountingProxy } from '../fakes/counting-proxy.js';
import { startDistribution, type Distribution } from '../helpers/distribution.js';
import { makeImage } from '../helpers/images.js';
import { startPullthrough, type RunningPullthrough } from '../helpers/pullthrough.js';

const ACCEPT = 'application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json';

describe('tag freshness and outages against a real distribution registry', { timeout: 300_000 }, () => {
  let registry: Distribution;
  let proxy: CountingProxy;
  let cache: RunningPullthrough;
  let always: RunningPullthrough;
  let clock = Date.UTC(2026, 0, 1);
  const first = makeImage({ layerSizes: [10_000] });
  const second = makeImage({ layerSizes: [12_000] });

  before(async () => {
    registry = await startDistribution();
    await registry.push('library/web', 'stable', first);
    await registry.push('library/web', 'always', first);
    proxy = await startCountingProxy(registry.url);
    cache = await startPullthrough({ upstreams: [{ host: 'docker.io', url: proxy.url, default: true, tagTtl: '5m' }], now: () => clock });
    always = await startPullthrough({ upstreams: [{ host: 'docker.io', url: proxy.url, default: true, tagTtl: '0' }], now: () => clock });
  });
  after(async () => {
    await cache?.close();
    await always?.close();
    await proxy?.close();
    await registry?.stop();
  });

  const manifestRequests = (method: string, tag: string) => proxy.count(method, new RegExp(`/manifests/${tag}$`));
  const digestOf = async (server: RunningPullthrough, tag: string) => (await request(server.url).get(`/v2/library/web/manifests/${tag}`).set('accept', ACCEPT).expect(200)).headers['docker-content-digest'];

  it('answers inside tagTtl without the upstream and sees a retag after it', async () => {
    assert.equal(await digestOf(cache, 'stable'), first.digest);
    await registry.push('library/web', 'stable', second);
    clock += 4 * 60_000;
    assert.equal(await digestOf(cache, 'stable'), first.digest, 'still fresh: the cached digest');
    assert.equal(manifestRequests('GET', 'stable') + manifestRequests('HEAD', 'stable'), 1);
    clock += 2 * 60_000;
    assert.equal(await digestOf(cache, 'stable'), second.digest, 'expired: the retag is seen');
    assert.equal(manifestRequests('HEAD', 'stable'), 1);
    assert.equal(manifestRequests('GET', 'stable'), 2);
  });

  it('with tagTtl 0 revalidates every request with a HEAD only', async () => {
    for (let i = 0; i < 4; i++) assert.equal(await digestOf(always, 'always'), first.digest);
    assert.equal(manifestRequests('GET', 'always'), 1);
    assert.equal(manifestRequests('HEAD', 'always'), 3);
  });

  it('serves cached tags and digests with the upstream stopped, and 503 fast for the rest', async () => {
    await registry.stop();
    clock += 10 * 60_000;
    const stale = await request(cache.url).get('/v2/library/web/manifests/stable').set('accept', ACCEPT).expect(200);
    assert.equal(stale.headers['docker-content-digest'], second.digest);
    assert.match(String(stale.headers['warning']), /Revalidation failed/);
    await request(cache.url).get(`/v2/library/web/manifests/${second.digest}`).expect(200);
    await request(cache.url).get(`/v2/library/web/blobs/${second.layers[0]!.digest}`).expect(503);
    const missing = await request(cache.url).get('/v2/library/web/manifests/never-pulled').expect(503);
    assert.equal(missing.body.errors[0].code, 'UNAVAILABLE');
    assert.match(missing.body.errors[0].message, /docker\.io/);
  });
});
