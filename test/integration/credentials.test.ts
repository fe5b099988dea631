import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import request from 'supertest';
import { startFakeUpstream, type FakeUpstream } from '../fakes/fake-upstream.js';
import { makeImage } from '../helpers/images.js';
import { startPullthrough, type RunningPullthrough, type UpstreamSpec } from '../helpers/pullthrough.js';

const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
const decode = (header: string | string[] | undefined) => (typeof header === 'string' ? Buffer.from(header.replace(/^Basic /, ''), 'base64').toString() : undefined);

describe('upstream credentials: configured, shared, forwarded', () => {
  let upstream: FakeUpstream;
  let cache: RunningPullthrough;
  let dir: string;
  const privateImage = makeImage({ layerSizes: [1000] });
  const publicImage = makeImage({ layerSizes: [1000] });

  before(async () => {
    upstream = await startFakeUpstream({ privateRepositories: ['acme/private'], users: { robot: 'robot-secret', alice: 'alice-secret' } });
    upstream.addImage('acme/private', '1.0', privateImage);
    upstream.addImage('acme/public', '1.0', publicImage);
    dir = await mkdtemp(path.join(tmpdir(), 'pullthrough-creds-'));
    await writeFile(path.join(dir, 'password'), 'robot-secret\n');
  });
  after(async () => {
    await upstream.close();
    await rm(dir, { recursive: true, force: true });
  });
  afterEach(async () => {
    await cache?.close();
    upstream.requests.length = 0;
  });

  const start = (credentials?: UpstreamSpec['credentials']) =>
    startPullthrough({ upstreams: [{ host: 'registry.example', url: upstream.url, default: true, ...(credentials && { credentials }) }] }).then((c) => (cache = c));

  it('keeps content fetched with unshared configured credentials from anonymous clients', async () => {
    await start({ username: 'robot', passwordFile: path.join(dir, 'password') });
    await request(cache.url).get('/v2/acme/private/manifests/1.0').expect(401);
    await request(cache.url).get('/v2/acme/private/manifests/1.0').set('authorization', basic('alice', 'alice-secret')).expect(200);
    // Warm now, and still not for anonymous clients.
    await request(cache.url).get('/v2/acme/private/manifests/1.0').expect(401);
    await request(cache.url).get(`/v2/acme/private/blobs/${privateImage.layers[0]!.digest}`).expect(401);
  });

  it('uses configured credentials for public content once anonymous access is proven, for better rate limits', async () => {
    const hub = await startFakeUpstream({ bearer: true });
    hub.addImage('library/nginx', '1.27', publicImage);
    try {
      cache = await startPullthrough({ upstreams: [{ host: 'docker.io', url: hub.url, default: true, credentials: { username: 'robot', password: 'robot-secret' } }] });
      await request(cache.url).get('/v2/library/nginx/manifests/1.27').expect(200);
      await request(cache.url).get(`/v2/library/nginx/blobs/${publicImage.layers[0]!.digest}`).expect(200);
      const tokenRequests = hub.requests.filter((r) => r.path === '/token').map((r) => decode(r.headers.authorization));
      assert.deepEqual(tokenRequests, [undefined, 'robot:robot-secret'], 'the first fetch proves it public, the next token is the robot\'s');
    } finally {
      await hub.close();
    }
  });

  it('serves everyone with shared configured credentials', async () => {
    await start({ username: 'robot', password: 'robot-secret', shared: true });
    const res = await request(cache.url).get('/v2/acme/private/manifests/1.0').expect(200);
    assert.equal(res.headers['docker-content-digest'], privateImage.digest);
    assert.ok(upstream.requests.some((r) => decode(r.headers.authorization) === 'robot:robot-secret'));
  });

  it("forwards a client's own credentials ahead of configured ones, and learns the upstream takes Basic", async () => {
    await start({ username: 'robot', passwordFile: path.join(dir, 'password') });
    await request(cache.url).get('/v2/acme/private/manifests/1.0').set('authorization', basic('alice', 'alice-secret')).expect(200);
    await request(cache.url).get(`/v2/acme/private/blobs/${privateImage.layers[0]!.digest}`).set('authorization', basic('alice', 'alice-secret')).expect(200);
    const users = upstream.requests.map((r) => decode(r.headers.authorization));
    assert.ok(users.every((u) => u === undefined || u === 'alice:alice-secret'), 'the robot was never used for alice');
    assert.equal(upstream.requests.filter((r) => r.headers.authorization === undefined).length, 1, 'one challenge, then Basic up front');
  });

  it('reads credentials from a docker config.json', async () => {
    const config = path.join(dir, 'config.json');
    await writeFile(config, JSON.stringify({ auths: { 'registry.example': { auth: Buffer.from('robot:robot-secret').toString('base64') } } }));
    await start({ dockerConfig: config, shared: true });
    await request(cache.url).get('/v2/acme/private/manifests/1.0').expect(200);
  });

  it('refuses to start with a credentials file it cannot read, naming the key', async () => {
    await assert.rejects(start({ username: 'robot', passwordFile: path.join(dir, 'missing') }), /upstreams\[0\]\.credentials: .*ENOENT/);
  });
});
