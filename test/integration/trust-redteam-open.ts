import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import request from 'supertest';
import { startFakeUpstream, type FakeUpstream, type FakeUpstreamOptions } from '../fakes/fake-upstream.js';
import { makeImage } from '../helpers/images.js';
import { startPullthrough, type RunningPullthrough, type UpstreamSpec } from '../helpers/pullthrough.js';
import { binary, fillsSettled, loopbackHostName, startInternalService } from '../helpers/redteam.js';

/*
 * Attacks on the trust model that still work on main, written as tests that fail today. The file
 * name does not end in `.test.ts`, so `npm run test:integration` leaves it out and main stays
 * green; run it with `node --import tsx --test test/integration/trust-redteam-open.ts`. Move a
 * case into trust-redteam.test.ts with its fix.
 */

const ALICE = `Basic ${Buffer.from('alice:alice-secret').toString('base64')}`;

describe('trust red team: open attacks (fail on main)', () => {
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

  it('_catalog does not name a repository that turned private, online, on a proof long stale', async () => {
    // Open because test/e2e/private-upstreams.test.ts expects _catalog to list on stale proofs while the
    // upstream is down (the outage rule): telling "down" from "not asked" needs a decision.
    let clock = Date.now();
    const upstream = await fake();
    upstream.addImage('acme/app', '1.0', makeImage({ layerSizes: [100] }));
    const c = await start([{ host: 'registry.example', url: upstream.url, default: true, accessTtl: '5m', tagTtl: '1h' }], { now: () => clock });
    await request(c.url).get('/v2/acme/app/manifests/1.0').expect(200);
    upstream.setPrivate('acme/app', true);
    clock += 24 * 60 * 60_000;
    const catalog = await request(c.url).get('/v2/_catalog');
    assert.equal(JSON.stringify(catalog.body).includes('acme/app'), false, 'private for a day, still listed to anyone');
  });
});
