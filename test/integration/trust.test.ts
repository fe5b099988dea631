import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, afterEach, describe, it } from 'node:test';
import request from 'supertest';
import { startFakeUpstream, type FakeUpstream, type FakeUpstreamOptions } from '../fakes/fake-upstream.js';
import { makeImage, OCI } from '../helpers/images.js';
import { startPullthrough, type RunningPullthrough, type UpstreamSpec } from '../helpers/pullthrough.js';

/*
 * The attacks of issue 11, each against a pullthrough on loopback with a hostile upstream or
 * client. Every case asserts the bytes never reach the wrong client and the documented answer.
 */

const ALICE = `Basic ${Buffer.from('alice:alice-secret').toString('base64')}`;
const MALLORY = `Basic ${Buffer.from('alice:wrong').toString('base64')}`;
const STANDARD_ACCEPT = [OCI.manifest, OCI.index, 'application/vnd.docker.distribution.manifest.v2+json', 'application/vnd.docker.distribution.manifest.list.v2+json'].join(', ');

const binary = (r: request.Test) =>
  r.buffer(true).parse((res, cb) => {
    const chunks: Buffer[] = [];
    res.on('data', (c: Buffer) => chunks.push(c));
    res.on('end', () => cb(null, Buffer.concat(chunks)));
  });

async function until(condition: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 500; i++) {
    if (condition()) return;
    await sleep(10);
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** A stand-in for the cloud metadata service: anything that reaches it has leaked. */
async function startMetadataService(): Promise<{ url: string; hits: () => number; close(): Promise<void> }> {
  let hits = 0;
  const server: Server = createServer((_req, res) => {
    hits += 1;
    res.writeHead(200, { 'content-type': 'application/json' }).end('{"AccessKeyId":"ASIA-SECRET","SecretAccessKey":"node-role-secret"}');
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    hits: () => hits,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

describe('trust: a hostile upstream or client cannot make private content leak', () => {
  const opened: Array<{ close(): Promise<unknown> }> = [];
  let cache: RunningPullthrough;
  const fake = async (options: FakeUpstreamOptions = {}): Promise<FakeUpstream> => {
    const upstream = await startFakeUpstream({ users: { alice: 'alice-secret' }, ...options });
    opened.push(upstream);
    return upstream;
  };
  const start = async (upstreams: UpstreamSpec[], extra: Parameters<typeof startPullthrough>[0] = { upstreams: [] }) => {
    cache = await startPullthrough({ ...extra, upstreams });
    return cache;
  };
  afterEach(async () => {
    await cache?.close();
    for (const item of opened.splice(0)) await item.close();
  });

  it('1. an upstream vouches only for what it served: a lying HEAD does not unlock another upstream\'s private bytes', async () => {
    const image = makeImage({ layerSizes: [3000] });
    const layer = image.layers[0]!;
    const owner = await fake({ privateRepositories: ['team/private'], scopedBlobs: true });
    owner.addImage('team/private', '1.0', image);
    const liar = await fake({ lieOnHead: true });
    await start([
      { host: 'private.example', url: owner.url, default: true },
      { host: 'liar.example', url: liar.url },
    ]);
    await request(cache.url).get('/v2/team/private/manifests/1.0').set('authorization', ALICE).expect(200);
    await binary(request(cache.url).get(`/v2/team/private/blobs/${layer.digest}`).set('authorization', ALICE)).expect(200);

    const stolen = await binary(request(cache.url).get(`/v2/liar.example/any/thing/blobs/${layer.digest}`));
    assert.equal(stolen.status, 404, 'the liar never delivered these bytes: it is asked for them, and has none');
    assert.equal(stolen.body.toString().includes('BLOB_UNKNOWN'), true);
    assert.equal(liar.count('GET', `/v2/any/thing/blobs/${layer.digest}`), 1, 'the liar had to deliver, not vouch');
    const manifest = await request(cache.url).get(`/v2/liar.example/any/thing/manifests/${image.digest}`);
    assert.equal(manifest.status, 404);

    // The failed attempt made nothing public: not through the owner's name, not through another route.
    const anonymous = await binary(request(cache.url).get(`/v2/team/private/blobs/${layer.digest}`));
    assert.equal(anonymous.status, 401);
    assert.equal((anonymous.body as Buffer).includes(layer.bytes.subarray(0, 64)), false);
    await request(cache.url).get(`/v2/liar.example/any/thing/blobs/${layer.digest}`).expect(404);
  });

  it('1b. bytes one upstream served are served through another only after it delivered the same digest itself', async () => {
    const image = makeImage({ layerSizes: [2000] });
    const layer = image.layers[0]!;
    const first = await fake();
    first.addImage('library/app', '1.0', image);
    const second = await fake();
    second.addImage('library/app', '1.0', image);
    await start([
      { host: 'first.example', url: first.url, default: true },
      { host: 'second.example', url: second.url },
    ]);
    await binary(request(cache.url).get(`/v2/library/app/blobs/${layer.digest}`)).expect(200);
    const res = await binary(request(cache.url).get(`/v2/second.example/library/app/blobs/${layer.digest}`)).expect(200);
    assert.ok((res.body as Buffer).equals(layer.bytes));
    assert.equal(second.count('GET', `/v2/library/app/blobs/${layer.digest}`), 1, 'the second upstream delivered it');
    // Now both have vouched: no more upstream traffic for either route.
    await binary(request(cache.url).get(`/v2/second.example/library/app/blobs/${layer.digest}`)).expect(200);
    assert.equal(second.count('GET', `/v2/library/app/blobs/${layer.digest}`), 1);
  });

  it('2. public once is not public forever: an access proof expires and is asked again', async () => {
    let clock = Date.now();
    const v1 = makeImage({ layerSizes: [1000] });
    const v2 = makeImage({ layerSizes: [1000] });
    const upstream = await fake();
    upstream.addImage('acme/app', '1.0', v1);
    await start([{ host: 'registry.example', url: upstream.url, default: true, accessTtl: '5m', tagTtl: '1h' }], { upstreams: [], now: () => clock });
    await request(cache.url).get('/v2/acme/app/manifests/1.0').expect(200);
    await binary(request(cache.url).get(`/v2/acme/app/blobs/${v1.layers[0]!.digest}`)).expect(200);

    upstream.setPrivate('acme/app', true);
    upstream.addImage('acme/app', '2.0', v2);
    await request(cache.url).get('/v2/acme/app/manifests/2.0').set('authorization', ALICE).expect(200);
    await binary(request(cache.url).get(`/v2/acme/app/blobs/${v2.layers[0]!.digest}`).set('authorization', ALICE)).expect(200);

    clock += 6 * 60_000;
    await request(cache.url).get('/v2/acme/app/manifests/2.0').expect(401);
    const layer = await binary(request(cache.url).get(`/v2/acme/app/blobs/${v2.layers[0]!.digest}`));
    assert.equal(layer.status, 401);
    await request(cache.url).get(`/v2/acme/app/blobs/${v1.layers[0]!.digest}`).expect(401);
    await request(cache.url).get('/v2/acme/app/manifests/1.0').expect(401);
    // alice still reads it, and the HEAD that proves it is cheap.
    await request(cache.url).get('/v2/acme/app/manifests/2.0').set('authorization', ALICE).expect(200);
  });

  it('2b. a stale anonymous proof is renewed by one HEAD while the repository stays public', async () => {
    let clock = Date.now();
    const image = makeImage({ layerSizes: [500] });
    const upstream = await fake();
    upstream.addImage('acme/app', '1.0', image);
    await start([{ host: 'registry.example', url: upstream.url, default: true, accessTtl: '1m', tagTtl: '1h' }], { upstreams: [], now: () => clock });
    await request(cache.url).get('/v2/acme/app/manifests/1.0').expect(200);
    clock += 2 * 60_000;
    const before = upstream.requests.length;
    await request(cache.url).get('/v2/acme/app/manifests/1.0').expect(200);
    await request(cache.url).get('/v2/acme/app/manifests/1.0').expect(200);
    const asked = upstream.requests.slice(before);
    assert.deepEqual(asked.map((r) => r.method), ['HEAD'], 'one cheap re-proof, then fresh again');
  });

  it('3. a join is the joiner\'s decision: strangers\' failing fills do not fail alice', async () => {
    const image = makeImage({ layerSizes: [4000] });
    const layer = image.layers[0]!;
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const upstream = await fake({
      privateRepositories: ['team/private'],
      onRequest: (r) => (r.method === 'GET' && r.path.endsWith(layer.digest) && !r.headers.authorization ? gate : undefined),
    });
    upstream.addImage('team/private', '1.0', image);
    await start([{ host: 'registry.example', url: upstream.url, default: true }]);
    await request(cache.url).get('/v2/team/private/manifests/1.0').set('authorization', ALICE).expect(200);

    const strangers = Array.from({ length: 4 }, () => binary(request(cache.url).get(`/v2/team/private/blobs/${layer.digest}`)).then((r) => r));
    await until(() => upstream.count('GET', `/v2/team/private/blobs/${layer.digest}`) >= 1, 'the strangers\' fill');
    const alice = binary(request(cache.url).get(`/v2/team/private/blobs/${layer.digest}`).set('authorization', ALICE)).then((r) => r);
    await sleep(150);
    release();
    const aliceRes = await alice;
    assert.equal(aliceRes.status, 200, 'alice gets her own fill when the one she joined fails for its starter');
    assert.ok((aliceRes.body as Buffer).equals(layer.bytes));
    for (const res of await Promise.all(strangers)) {
      assert.equal(res.status, 401);
      assert.equal((res.body as Buffer).includes(layer.bytes.subarray(0, 64)), false);
    }
  });

  it('3b. a fill through a repository that does not hold the blob does not fail one that does', async () => {
    const image = makeImage({ layerSizes: [4000] });
    const layer = image.layers[0]!;
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const upstream = await fake({ scopedBlobs: true, onRequest: (r) => (r.path.startsWith('/v2/library/nothere/') ? gate : undefined) });
    upstream.addImage('library/app', '1.0', image);
    await start([{ host: 'docker.io', url: upstream.url, default: true }]);
    const spam = binary(request(cache.url).get(`/v2/library/nothere/blobs/${layer.digest}`)).then((r) => r);
    await until(() => upstream.count('GET', `/v2/library/nothere/blobs/${layer.digest}`) === 1, 'the spam fill');
    const real = binary(request(cache.url).get(`/v2/library/app/blobs/${layer.digest}`)).then((r) => r);
    await sleep(150);
    release();
    assert.equal((await real).status, 200);
    assert.ok(((await real).body as Buffer).equals(layer.bytes));
    assert.equal((await spam).status, 404);
    // And the spam route never gets the bytes afterwards either.
    await request(cache.url).get(`/v2/library/nothere/blobs/${layer.digest}`).expect(404);
  });

  it('4. a "not found" is remembered only for what decided it: an odd Accept does not poison the tag', async () => {
    const image = makeImage({ layerSizes: [100] });
    const upstream = await fake({ strictAccept: true });
    upstream.addImage('library/app', '1.0', image);
    await start([{ host: 'docker.io', url: upstream.url, default: true, notFoundTtl: '60s' }]);
    const odd = await request(cache.url).get('/v2/library/app/manifests/1.0').set('accept', 'x/y');
    assert.notEqual(odd.status, 200);
    const res = await request(cache.url).get('/v2/library/app/manifests/1.0').set('accept', STANDARD_ACCEPT).expect(200);
    assert.equal(res.headers['docker-content-digest'], image.digest);
  });

  it('4b. wrong credentials that get a 404 do not make the tag 404 for alice', async () => {
    const image = makeImage({ layerSizes: [100] });
    const upstream = await fake({ privateRepositories: ['team/private'], unauthorizedStatus: 404 });
    upstream.addImage('team/private', '1.0', image);
    await start([{ host: 'registry.example', url: upstream.url, default: true, notFoundTtl: '60s' }]);
    await request(cache.url).get('/v2/team/private/manifests/1.0').set('authorization', MALLORY).expect(404);
    // Mallory's 404 is remembered for mallory: the upstream is not asked again for it.
    const before = upstream.requests.length;
    await request(cache.url).get('/v2/team/private/manifests/1.0').set('authorization', MALLORY).expect(404);
    assert.equal(upstream.requests.length, before);
    await request(cache.url).get('/v2/team/private/manifests/1.0').expect(401);
    const res = await request(cache.url).get('/v2/team/private/manifests/1.0').set('authorization', ALICE).expect(200);
    assert.equal(res.headers['docker-content-digest'], image.digest);
    // Now cached: mallory still gets no bytes.
    const again = await request(cache.url).get('/v2/team/private/manifests/1.0').set('authorization', MALLORY);
    assert.equal(again.status, 401);
    assert.equal(again.text.includes('schemaVersion'), false);
  });

  it('5. a redirect to the metadata service is not followed, and nothing of it is returned or cached', async () => {
    const metadata = await startMetadataService();
    opened.push(metadata);
    const image = makeImage({ layerSizes: [100] });
    const upstream = await fake();
    upstream.addImage('library/app', '1.0', image);
    const secretPath = '/latest/meta-data/iam/security-credentials/node-role';
    upstream.setFault('library/app:1.0', { type: 'redirect', location: `${metadata.url}${secretPath}` });
    upstream.setFault(image.layers[0]!.digest, { type: 'redirect', location: `${metadata.url}${secretPath}` });
    await start([{ host: 'docker.io', url: upstream.url, default: true }]);
    const res = await request(cache.url).get('/v2/library/app/manifests/1.0');
    assert.ok(res.status === 502 || res.status === 503 || res.status === 403, `got ${res.status}`);
    assert.doesNotMatch(res.text, /SECRET|secret|127\.0\.0\.1/);
    const blob = await request(cache.url).get(`/v2/library/app/blobs/${image.layers[0]!.digest}`);
    assert.notEqual(blob.status, 200);
    assert.doesNotMatch(blob.text, /SECRET|127\.0\.0\.1/);
    assert.equal(metadata.hits(), 0, 'the metadata service was never contacted');
    upstream.setFault('library/app:1.0', undefined);
    const good = await request(cache.url).get('/v2/library/app/manifests/1.0').expect(200);
    assert.equal(good.headers['docker-content-digest'], image.digest, 'nothing bad was cached under the tag');
  });

  it('5b. a redirect is followed to an origin the operator lists', async () => {
    const cdn = await fake();
    const image = makeImage({ layerSizes: [100] });
    cdn.addImage('library/app', '1.0', image);
    const upstream = await fake();
    upstream.addImage('library/app', '1.0', image);
    upstream.setFault(image.layers[0]!.digest, { type: 'redirect', location: `${cdn.url}/v2/library/app/blobs/${image.layers[0]!.digest}` });
    await start([{ host: 'docker.io', url: upstream.url, default: true, allowOrigins: [cdn.url] }]);
    await binary(request(cache.url).get(`/v2/library/app/blobs/${image.layers[0]!.digest}`)).expect(200);
  });

  it('5c. a token realm elsewhere than a public or listed origin, or not http(s), is not followed', async () => {
    const metadata = await startMetadataService();
    opened.push(metadata);
    for (const realm of [`${metadata.url}/token`, 'file:///etc/passwd', 'ftp://127.0.0.1/token']) {
      const upstream = await fake({
        onRequest: () => undefined,
      });
      const image = makeImage({ layerSizes: [10] });
      upstream.addImage('library/app', '1.0', image);
      upstream.setFault('library/app:1.0', { type: 'status', status: 401, headers: { 'www-authenticate': `Bearer realm="${realm}",service="x"` } });
      await start([{ host: 'docker.io', url: upstream.url, default: true }]);
      const res = await request(cache.url).get('/v2/library/app/manifests/1.0');
      assert.notEqual(res.status, 200, realm);
      assert.doesNotMatch(res.text, /SECRET|passwd|127\.0\.0\.1/, realm);
      await cache.close();
    }
    assert.equal(metadata.hits(), 0);
  });

  it('5d. catch-all hosts on loopback and private addresses are refused alike, open port or not, unless allowed', async () => {
    const metadata = await startMetadataService();
    opened.push(metadata);
    const upstream = await fake();
    await start([{ host: 'docker.io', url: upstream.url, default: true }, { host: '*', url: 'http://{host}' }]);
    const open = new URL(metadata.url).host;
    const answers = [];
    for (const host of [open, '127.0.0.1:1', 'localhost', '169.254.169.254', '10.1.2.3:5000', '[::1]:5000', '0.0.0.0:80']) {
      const res = await request(cache.url).get(`/v2/library/app/manifests/1.0?ns=${encodeURIComponent(host)}`);
      assert.equal(res.status, 403, host);
      assert.equal(res.body.errors[0].code, 'DENIED', host);
      answers.push(res.body.errors[0].message.replace(host, 'HOST'));
    }
    assert.equal(new Set(answers).size, 1, 'every refusal reads the same: nothing tells an open port from a closed one');
    assert.equal(metadata.hits(), 0);
    await cache.close();

    const image = makeImage({ layerSizes: [10] });
    upstream.addImage('team/app', '1.0', image);
    await start([{ host: 'docker.io', url: upstream.url, default: true }, { host: '*', url: 'http://{host}', allowPrivate: ['127.0.0.0/8'] }]);
    await request(cache.url).get(`/v2/team/app/manifests/1.0?ns=${encodeURIComponent(upstream.host)}`).expect(200);
    await request(cache.url).get(`/v2/team/app/manifests/1.0?ns=${encodeURIComponent('10.1.2.3:5000')}`).expect(403);
  });

  it('5e. a manifest is a manifest: other media types and bodies that do not parse are refused and never cached', async () => {
    const image = makeImage({ layerSizes: [10] });
    const upstream = await fake();
    upstream.addImage('library/app', '1.0', image);
    await start([{ host: 'docker.io', url: upstream.url, default: true }]);
    const cases = [
      { headers: { 'content-type': 'application/json' }, body: '{"AccessKeyId":"ASIA-SECRET"}' },
      { headers: { 'content-type': 'text/html' }, body: '<html>login</html>' },
      { headers: { 'content-type': OCI.manifest }, body: 'not json at all' },
      { headers: { 'content-type': OCI.manifest }, body: '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}' },
    ];
    for (const fault of cases) {
      upstream.setFault('library/app:1.0', { type: 'raw', status: 200, ...fault });
      const res = await request(cache.url).get('/v2/library/app/manifests/1.0');
      assert.ok(res.status === 502 || res.status === 503, `${fault.body}: ${res.status}`);
      assert.doesNotMatch(res.text, /SECRET|login/);
    }
    upstream.setFault('library/app:1.0', undefined);
    const res = await request(cache.url).get('/v2/library/app/manifests/1.0').expect(200);
    assert.equal(res.headers['docker-content-digest'], image.digest);
  });

  it('7. repeated wrong passwords are answered here, not relayed upstream (no lockout of the node)', async () => {
    const image = makeImage({ layerSizes: [10] });
    const upstream = await fake({ privateRepositories: ['team/private'] });
    upstream.addImage('team/private', '1.0', image);
    await start([{ host: 'registry.example', url: upstream.url, default: true }]);
    for (let i = 0; i < 50; i++) await request(cache.url).get('/v2/team/private/manifests/1.0').set('authorization', MALLORY).expect(401);
    assert.ok(upstream.requests.length <= 3, `the upstream saw ${upstream.requests.length} requests`);
    await request(cache.url).get('/v2/team/private/manifests/1.0').set('authorization', ALICE).expect(200);
  });

  it('6. the 401 realm comes from publicUrl or a valid Host, never from a hostile one', async () => {
    const upstream = await fake();
    await start([{ host: 'docker.io', url: upstream.url, default: true }]);
    const hostile = await request(cache.url).get('/v2/').set('host', 'evil.example",error="x');
    assert.equal(hostile.status, 401);
    assert.doesNotMatch(hostile.headers['www-authenticate'] ?? '', /evil|error=/);
    const noPort = await request(cache.url).get('/v2/').set('host', 'evil.example:99999');
    assert.doesNotMatch(noPort.headers['www-authenticate'] ?? '', /evil|99999/, 'a port no URL can hold is no realm');
    const normal = await request(cache.url).get('/v2/');
    assert.match(normal.headers['www-authenticate'] ?? '', new RegExp(`realm="http://${cache.host.replace(/\./g, '\\.')}/_pullthrough/token"`));
    await cache.close();

    await start([{ host: 'docker.io', url: upstream.url, default: true }], { upstreams: [], extra: { publicUrl: 'https://mirror.example.com' } });
    const pinned = await request(cache.url).get('/v2/').set('host', 'evil.example');
    assert.match(pinned.headers['www-authenticate'] ?? '', /realm="https:\/\/mirror\.example\.com\/_pullthrough\/token"/);
  });

  it('6b. /metrics and the status page can require the admin token, and never show internal URLs of failed calls', async () => {
    const token = 'a-long-admin-token-0123456789';
    await start([{ host: 'internal.example', url: 'http://127.0.0.1:1', default: true }], {
      upstreams: [],
      admin: { token },
      extra: { metrics: { requireToken: true }, status: { requireToken: true } },
    });
    await request(cache.url).get('/v2/library/app/manifests/1.0').expect(503);
    await request(cache.url).get('/metrics').expect(401);
    await request(cache.url).get('/').expect(401);
    await request(cache.url).get('/_pullthrough/status').expect(401);
    await request(cache.url).get('/metrics').set('authorization', `Bearer ${token}`).expect(200);
    const page = await request(cache.url).get('/').set('authorization', `Bearer ${token}`).expect(200);
    const json = await request(cache.url).get('/_pullthrough/status').set('authorization', `Bearer ${token}`).expect(200);
    for (const text of [page.text, JSON.stringify(json.body)]) assert.doesNotMatch(text, /127\.0\.0\.1:1/);
  });
});

after(() => undefined);
