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
