import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import request from 'supertest';
import { startFakeUpstream, type FakeUpstream, type FakeUpstreamOptions } from '../fakes/fake-upstream.js';
import { makeImage } from '../helpers/images.js';
import { startPullthrough, type RunningPullthrough, type UpstreamSpec } from '../helpers/pullthrough.js';
import { binary, fillsSettled } from '../helpers/redteam.js';

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

  it('the status page and _catalog do not show tags of a repository whose anonymous proof went stale', async () => {
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
    const catalog = await request(c.url).get('/v2/_catalog');
    assert.equal(JSON.stringify(catalog.body).includes('acme/app'), false, 'the repository may have turned private: its name is not shown on a stale proof');
  });
});
