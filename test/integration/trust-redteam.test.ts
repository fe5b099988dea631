import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import request from 'supertest';
import { startFakeUpstream, type FakeUpstream, type FakeUpstreamOptions } from '../fakes/fake-upstream.js';
import { makeImage } from '../helpers/images.js';
import { startPullthrough, type RunningPullthrough, type UpstreamSpec } from '../helpers/pullthrough.js';
import { binary, fillsSettled, loopbackHostName, startInternalService } from '../helpers/redteam.js';

/*
 * Red-team follow-ups to trust.test.ts (issue 11): attacks on the trust model as it landed,
 * by a hostile client and a hostile upstream, each on loopback.
 */

const ALICE = `Basic ${Buffer.from('alice:alice-secret').toString('base64')}`;

describe('trust red team: attacks on the landed model', () => {
  const opened: Array<{ close(): Promise<unknown> }> = [];
  let cache: RunningPullthrough | undefined;
  const fake = async (options: FakeUpstreamOptions = {}): Promise<FakeUpstream> => {
    const upstream = await startFakeUpstream({ users: { alice: 'alice-secret' }, ...options });
    opened.push(upstream);
    return upstream;
  };
  const start = async (upstreams: UpstreamSpec[], extra: Omit<Parameters<typeof startPullthrough>[0], 'upstreams'> = {}) => {
    cache = await startPullthrough({ ...extra, upstreams });
    return cache;
  };
  afterEach(async () => {
    await cache?.close();
    cache = undefined;
    for (const item of opened.splice(0)) await item.close();
  });

  it('an outage does not link a digest to a repository the upstream never confirmed it in', async () => {
    let clock = Date.now();
    const old = makeImage({ layerSizes: [1500] });
    const bait = makeImage({ layerSizes: [100] });
    const layer = old.layers[0]!;
    const upstream = await fake({ scopedBlobs: true });
    upstream.addImage('acme/old', '1.0', old);
    upstream.addImage('mallory/bait', '1.0', bait);
    const c = await start([{ host: 'registry.example', url: upstream.url, default: true, accessTtl: '5m', tagTtl: '1h' }], { now: () => clock });
    await binary(request(c.url).get(`/v2/acme/old/blobs/${layer.digest}`)).expect(200);
    await fillsSettled(c);
    upstream.setPrivate('acme/old', true);
    clock += 6 * 60_000;
    // The upstream cannot answer for this digest a moment (a 503, a rate limit, a breaker a client tripped).
    upstream.setFault(layer.digest, { type: 'status', status: 503 });
    await binary(request(c.url).get(`/v2/mallory/bait/blobs/${layer.digest}`));
    upstream.setFault(layer.digest, undefined);
    // mallory's own repository is public: a fresh anonymous proof for it.
    await request(c.url).get('/v2/mallory/bait/manifests/1.0').expect(200);

    for (const name of ['mallory/bait', 'any/name']) {
      const res = await binary(request(c.url).get(`/v2/${name}/blobs/${layer.digest}`));
      assert.notEqual(res.status, 200, `${name}: the upstream never said this digest is in mallory/bait`);
      assert.equal((res.body as Buffer).includes(layer.bytes.subarray(0, 64)), false, name);
    }
  });

  it('the status page does not show tags of a repository whose anonymous proof went stale', async () => {
    let clock = Date.now();
    const v1 = makeImage({ layerSizes: [100] });
    const v2 = makeImage({ layerSizes: [100] });
    const upstream = await fake();
    upstream.addImage('acme/app', '1.0', v1);
    const c = await start([{ host: 'registry.example', url: upstream.url, default: true, accessTtl: '5m', tagTtl: '1h' }], { now: () => clock });
    await request(c.url).get('/v2/acme/app/manifests/1.0').expect(200);
    upstream.setPrivate('acme/app', true);
    upstream.addImage('acme/app', 'launch-secret', v2);
    clock += 6 * 60_000;
    await request(c.url).get('/v2/acme/app/manifests/launch-secret').set('authorization', ALICE).expect(200);

    const json = await request(c.url).get('/_pullthrough/status').expect(200);
    const page = await request(c.url).get('/').expect(200);
    for (const text of [JSON.stringify(json.body), page.text]) {
      assert.doesNotMatch(text, /launch-secret/);
      assert.equal(text.includes(v2.digest), false);
    }
  });

  it('held: catch-all host spellings of loopback are refused alike and never connected to', async () => {
    const internal = await startInternalService();
    opened.push(internal);
    const upstream = await fake();
    const c = await start([{ host: 'docker.io', url: upstream.url, default: true }, { host: '*', url: 'http://{host}' }]);
    const port = internal.port;
    const name = loopbackHostName();
    const hosts = [`127.1:${port}`, `2130706433:${port}`, `0x7f.1:${port}`, `0177.0.0.1:${port}`, `0x7f000001:${port}`, `LOCALHOST:${port}`, `Api.LocalHost:${port}`, `127.0.0.1.:${port}`, `localhost.:${port}`, ...(name ? [`${name}:${port}`, `${name.toUpperCase()}:${port}`] : [])];
    for (const host of hosts) {
      for (const path of [`/v2/library/app/manifests/1.0?ns=${encodeURIComponent(host)}`, `/v2/${host}/library/app/blobs/sha256:${'a'.repeat(64)}`]) {
        const res = await request(c.url).get(path);
        // 400 for what is no registry host at all, 403 or 404 for what the router refuses.
        assert.ok(res.status === 400 || res.status === 403 || res.status === 404, `${host}: ${res.status} ${res.text}`);
        assert.doesNotMatch(res.text.split(JSON.stringify(host).slice(1, -1)).join('HOST').split(host).join('HOST'), /SECRET|ECONNREFUSED|127\.0\.0\.1/, host);
      }
    }
    assert.equal(internal.hits(), 0);
  });

  it('held: redirects and token realms in any spelling of loopback are not followed', async () => {
    const internal = await startInternalService();
    opened.push(internal);
    const port = internal.port;
    const name = loopbackHostName();
    const targets = [
      `http://2130706433:${port}/x`,
      `http://0x7f.1:${port}/x`,
      `http://0177.1:${port}/x`,
      `http://[::ffff:127.0.0.1]:${port}/x`,
      `http://[::ffff:7f00:1]:${port}/x`,
      `http://[0:0:0:0:0:ffff:7f00:1]:${port}/x`,
      `//127.0.0.1:${port}/x`,
      `http://user:pw@127.0.0.1:${port}/x`,
      `http://localhost:${port}/x`,
      `http://localhost.:${port}/x`,
      `HTTP://LOCALHOST:${port}/x`,
      `http:127.0.0.1:${port}/x`,
      `http:\\\\127.0.0.1:${port}\\x`,
      ...(name ? [`http://${name}:${port}/x`] : []),
    ];
    for (const target of targets) {
      const image = makeImage({ layerSizes: [10] });
      const upstream = await fake();
      upstream.addImage('library/app', '1.0', image);
      upstream.setFault('library/app:1.0', { type: 'redirect', location: target });
      upstream.setFault(image.layers[0]!.digest, { type: 'status', status: 401, headers: { 'www-authenticate': `Bearer realm="${target}",service="x"` } });
      const c = await start([{ host: 'docker.io', url: upstream.url, default: true }]);
      const manifest = await request(c.url).get('/v2/library/app/manifests/1.0');
      const blob = await request(c.url).get(`/v2/library/app/blobs/${image.layers[0]!.digest}`);
      for (const res of [manifest, blob]) {
        assert.notEqual(res.status, 200, target);
        assert.doesNotMatch(res.text, /SECRET|ECONNREFUSED|127\.0\.0\.1/, target);
      }
      await c.close();
      cache = undefined;
    }
    assert.equal(internal.hits(), 0);
  });

  it('a client that makes the upstream look down does not unlock what alice fetched after the repository turned private', async () => {
    let clock = Date.now();
    const v1 = makeImage({ layerSizes: [100] });
    const v2 = makeImage({ layerSizes: [1200] });
    const upstream = await fake();
    upstream.addImage('acme/app', '1.0', v1);
    const c = await start([{ host: 'registry.example', url: upstream.url, default: true, accessTtl: '5m', tagTtl: '1h', breaker: { failures: 5, openFor: '30s' } }], {
      now: () => clock,
    });
    await request(c.url).get('/v2/acme/app/manifests/1.0').expect(200);
    upstream.setPrivate('acme/app', true);
    upstream.addImage('acme/app', '2.0', v2);
    clock += 6 * 60_000;
    await request(c.url).get('/v2/acme/app/manifests/2.0').set('authorization', ALICE).expect(200);
    await binary(request(c.url).get(`/v2/acme/app/blobs/${v2.layers[0]!.digest}`).set('authorization', ALICE)).expect(200);
    await fillsSettled(c);

    // The attacker exhausts the node's anonymous rate limit (429s) elsewhere on the upstream: the breaker opens.
    upstream.setFault('library/other:x', { type: 'status', status: 429 });
    for (let i = 0; i < 5; i++) await request(c.url).get('/v2/library/other/manifests/x');
    const manifest = await request(c.url).get('/v2/acme/app/manifests/2.0');
    assert.notEqual(manifest.status, 200, 'fetched with credentials while no fresh anonymous proof existed: never anonymous');
    assert.equal(manifest.text.includes(v2.layers[0]!.digest), false);
    const layer = await binary(request(c.url).get(`/v2/acme/app/blobs/${v2.layers[0]!.digest}`));
    assert.notEqual(layer.status, 200);
    assert.equal((layer.body as Buffer).includes(v2.layers[0]!.bytes.subarray(0, 64)), false);
    const tags = await request(c.url).get('/v2/acme/app/tags/list');
    assert.doesNotMatch(tags.text, /"2\.0"/, 'the tag alice pulled after the repository turned private is not listed');
  });

  it('an internal name that resolves to a refused address reads like a name that does not resolve', async () => {
    const name = loopbackHostName();
    if (!name) return; // no /etc/hosts name for loopback on this machine
    const internal = await startInternalService();
    opened.push(internal);
    const upstream = await fake();
    const c = await start([{ host: 'docker.io', url: upstream.url, default: true }, { host: '*', url: 'http://{host}' }]);
    const answers = [];
    for (const host of [`${name}:${internal.port}`, `no-such-name-pullthrough-test:${internal.port}`]) {
      const res = await request(c.url).get(`/v2/library/app/manifests/1.0?ns=${encodeURIComponent(host)}`);
      answers.push(`${res.status} ${String(res.body.errors?.[0]?.message).replace(host, 'HOST')}`);
    }
    assert.equal(answers[0], answers[1], 'the answer tells an existing internal name from a missing one');
    assert.equal(internal.hits(), 0);
  });
});
