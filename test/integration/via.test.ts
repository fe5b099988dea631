import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, afterEach, before, describe, it } from 'node:test';
import request from 'supertest';
import { startFakeUpstream, type FakeUpstream } from '../fakes/fake-upstream.js';
import { makeImage } from '../helpers/images.js';
import { metricValue, startPullthrough, type RunningPullthrough, type UpstreamSpec } from '../helpers/pullthrough.js';

const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
const MANIFEST_ACCEPT = 'application/vnd.oci.image.manifest.v1+json';

/** A loopback origin nothing listens on: connections are refused. */
async function deadOrigin(): Promise<string> {
  const gone = await startFakeUpstream();
  await gone.close();
  return gone.url;
}

describe('upstreams[].via: reaching an upstream through another mirror', () => {
  let mirror: FakeUpstream;
  let origin: FakeUpstream;
  let cache: RunningPullthrough | undefined;
  const image = makeImage({ layerSizes: [1500, 2500] });
  const onlyAtOrigin = makeImage({ layerSizes: [700] });
  const privateImage = makeImage({ layerSizes: [900] });

  before(async () => {
    mirror = await startFakeUpstream({ tagPageSize: 2, privateRepositories: ['acme/private'], users: { alice: 'alice-secret' } });
    origin = await startFakeUpstream({ privateRepositories: ['acme/private'], users: { alice: 'alice-secret' } });
    for (const target of [mirror, origin]) {
      target.addImage('library/app', '1.0', image);
      for (const tag of ['1.1', '1.2', '2.0']) target.addImage('library/app', tag, image);
      target.addImage('acme/private', '1.0', privateImage);
    }
    origin.addImage('library/only-origin', '1.0', onlyAtOrigin);
  });
  after(async () => {
    await mirror.close();
    await origin.close();
  });
  afterEach(async () => {
    await cache?.close();
    cache = undefined;
    mirror.requests.length = 0;
    origin.requests.length = 0;
  });

  const start = async (spec: Partial<UpstreamSpec>) => {
    cache = await startPullthrough({ upstreams: [{ host: 'docker.io', url: origin.url, default: true, via: mirror.url, ...spec }] });
    return cache;
  };

  it('sends every request to the mirror with ns=<upstream host>, and none to the upstream', async () => {
    const { url } = await start({});
    await request(url).head('/v2/app/manifests/1.0').set('accept', MANIFEST_ACCEPT).expect(200);
    await request(url).get('/v2/app/manifests/1.0').set('accept', MANIFEST_ACCEPT).expect(200);
    await request(url).get(`/v2/app/blobs/${image.layers[0]!.digest}`).expect(200);
    await request(url).head(`/v2/app/blobs/${image.layers[1]!.digest}`).expect(200);
    const tags = await request(url).get('/v2/app/tags/list').expect(200);
    assert.deepEqual((tags.body as { tags: string[] }).tags, ['1.0', '1.1', '1.2', '2.0'], 'every page, followed on the mirror');
    await request(url).get(`/v2/app/referrers/${image.digest}`).expect(200);

    assert.equal(origin.requests.length, 0, 'the upstream itself is not contacted');
    assert.ok(mirror.requests.length >= 6);
    for (const r of mirror.requests) assert.equal(r.query.get('ns'), 'docker.io', `${r.method} ${r.path}`);
    assert.ok(mirror.requests.every((r) => r.path.startsWith('/v2/library/app/')), 'the repository as the upstream knows it');
    const pages = mirror.requests.filter((r) => r.path === '/v2/library/app/tags/list');
    assert.ok(pages.length >= 2, 'the mirror paged tags/list');
    assert.ok(pages.some((r) => r.query.get('last') !== null), 'the Link from the mirror was followed, other parameters kept');
    assert.ok((await metricValue(url, 'pullthrough_upstream_requests_total', { upstream: 'docker.io+via' })) > 0, 'mirror requests carry their own label');
    assert.equal(await metricValue(url, 'pullthrough_upstream_requests_total', { upstream: 'docker.io' }), 0);
  });

  it("forwards the client's credentials to the mirror as it would to the upstream", async () => {
    const { url } = await start({});
    await request(url).get('/v2/acme/private/manifests/1.0').set('accept', MANIFEST_ACCEPT).expect(401);
    await request(url).get('/v2/acme/private/manifests/1.0').set('accept', MANIFEST_ACCEPT).set('authorization', basic('alice', 'alice-secret')).expect(200);
    const withCredentials = mirror.requests.filter((r) => r.headers.authorization === basic('alice', 'alice-secret'));
    assert.ok(withCredentials.length > 0, 'the mirror got alice’s credentials');
    assert.ok(withCredentials.every((r) => r.query.get('ns') === 'docker.io'));
    await request(url).get(`/v2/acme/private/blobs/${privateImage.layers[0]!.digest}`).set('authorization', basic('alice', 'alice-secret')).expect(200);
    // Cached now, and still refused to anonymous clients: the mirror's 401 is the proof.
    await request(url).get(`/v2/acme/private/manifests/${privateImage.digest}`).set('accept', MANIFEST_ACCEPT).expect(401);
    await request(url).get(`/v2/acme/private/blobs/${privateImage.layers[0]!.digest}`).expect(401);
    assert.equal(origin.requests.length, 0, 'a 401 from the mirror is an answer: no fallback');
  });

  it('answers a Bearer challenge of the mirror with a token from its realm', async () => {
    const hub = await startFakeUpstream({ bearer: true });
    hub.addImage('library/app', '1.0', image);
    try {
      cache = await startPullthrough({ upstreams: [{ host: 'docker.io', url: origin.url, default: true, via: hub.url }] });
      await request(cache.url).get('/v2/app/manifests/1.0').set('accept', MANIFEST_ACCEPT).expect(200);
      assert.equal(hub.count('GET', '/token'), 1);
      assert.equal(origin.requests.length, 0);
    } finally {
      await hub.close();
    }
  });

  it('goes to the upstream directly while the mirror refuses connections', async () => {
    cache = await startPullthrough({ upstreams: [{ host: 'docker.io', url: origin.url, default: true, via: await deadOrigin() }] });
    const res = await request(cache.url).get('/v2/app/manifests/1.0').set('accept', MANIFEST_ACCEPT).expect(200);
    assert.equal(res.headers['docker-content-digest'], image.digest);
    await request(cache.url).get(`/v2/app/blobs/${image.layers[0]!.digest}`).expect(200);
    assert.ok(origin.requests.length >= 2);
    assert.ok(origin.requests.every((r) => !r.query.has('ns')), 'ns= is for mirrors only');
    assert.ok((await metricValue(cache.url, 'pullthrough_via_fallbacks_total', { upstream: 'docker.io' })) >= 2);
  });

  it('goes to the upstream directly when the mirror answers 5xx', async () => {
    const { url } = await start({});
    mirror.setFault('library/app:1.0', { type: 'status', status: 503 });
    try {
      await request(url).get('/v2/app/manifests/1.0').set('accept', MANIFEST_ACCEPT).expect(200);
      assert.equal(origin.count('GET', '/v2/library/app/manifests/1.0'), 1);
      assert.equal(await metricValue(url, 'pullthrough_via_fallbacks_total', { upstream: 'docker.io' }), 1);
    } finally {
      mirror.setFault('library/app:1.0', undefined);
    }
  });

  it('takes a 404 from the mirror as the answer: no fallback', async () => {
    const { url } = await start({});
    await request(url).get('/v2/only-origin/manifests/1.0').set('accept', MANIFEST_ACCEPT).expect(404);
    await request(url).get(`/v2/only-origin/blobs/${onlyAtOrigin.layers[0]!.digest}`).expect(404);
    assert.equal(origin.requests.length, 0);
    assert.equal(await metricValue(url, 'pullthrough_via_fallbacks_total'), 0);
  });

  it('with viaFallback: false, a mirror outage is what the client gets (503)', async () => {
    cache = await startPullthrough({ upstreams: [{ host: 'docker.io', url: origin.url, default: true, via: await deadOrigin(), viaFallback: false }] });
    const res = await request(cache.url).get('/v2/app/manifests/1.0').set('accept', MANIFEST_ACCEPT).expect(503);
    const error = (res.body as { errors: Array<{ code: string; message: string }> }).errors[0];
    assert.equal(error?.code, 'UNAVAILABLE');
    assert.match(error?.message ?? '', /via mirror/, 'the message says which way failed');
    assert.doesNotMatch(error?.message ?? '', /127\.0\.0\.1/, 'and names no address');
    await request(cache.url).get(`/v2/app/blobs/${image.layers[0]!.digest}`).expect(503);
    assert.equal(origin.requests.length, 0);
  });

  it("opens the mirror's own breaker and shows the upstream as reachable while the fallback answers", async () => {
    cache = await startPullthrough({ upstreams: [{ host: 'docker.io', url: origin.url, default: true, via: await deadOrigin(), breaker: { failures: 1, openFor: '1m' } }] });
    await request(cache.url).get('/v2/app/manifests/1.0').set('accept', MANIFEST_ACCEPT).expect(200);
    await request(cache.url).get(`/v2/app/blobs/${image.layers[0]!.digest}`).expect(200);
    assert.equal(await metricValue(cache.url, 'pullthrough_upstream_breaker_open', { upstream: 'docker.io+via' }), 1);
    assert.equal(await metricValue(cache.url, 'pullthrough_upstream_requests_total', { upstream: 'docker.io+via', status: 'breaker_open' }), 1, 'the open breaker sends the next request direct at once');
    const status = (await request(cache.url).get('/_pullthrough/status').expect(200)).body as { upstreams: Array<{ host: string; breaker: string; lastOkAt?: number }> };
    assert.equal(status.upstreams[0]?.host, 'docker.io');
    assert.equal(status.upstreams[0]?.breaker, 'closed');
    assert.ok(status.upstreams[0]?.lastOkAt);
  });

  it('takes the next tags/list page from the upstream, without ns=, when the mirror fails between pages', async () => {
    let pages = 0;
    // A mirror that answers the first page (its Link keeping ns=, as pullthrough's does) and then fails.
    const flaky = createServer((req, res) => {
      if (pages++ > 0) return void res.writeHead(503).end();
      res.writeHead(200, { 'content-type': 'application/json', link: '</v2/library/app/tags/list?n=2&last=1.1&ns=docker.io>; rel="next"' });
      res.end(JSON.stringify({ name: 'library/app', tags: ['1.0', '1.1'] }));
    });
    flaky.listen(0, '127.0.0.1');
    await once(flaky, 'listening');
    try {
      cache = await startPullthrough({ upstreams: [{ host: 'docker.io', url: origin.url, default: true, via: `http://127.0.0.1:${(flaky.address() as AddressInfo).port}` }] });
      const tags = await request(cache.url).get('/v2/app/tags/list').expect(200);
      assert.deepEqual((tags.body as { tags: string[] }).tags, ['1.0', '1.1', '1.2', '2.0']);
      const rest = origin.requests.filter((r) => r.path === '/v2/library/app/tags/list');
      assert.equal(rest.length, 1, 'only the page after the mirror failed');
      assert.equal(rest[0]?.query.get('last'), '1.1');
      assert.equal(rest[0]?.query.has('ns'), false, 'ns= is for mirrors only');
    } finally {
      flaky.closeAllConnections();
      await new Promise((resolve) => flaky.close(resolve));
    }
  });
});
