import assert from 'node:assert/strict';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import request from 'supertest';
import { startFakeUpstream, type FakeUpstream } from '../fakes/fake-upstream.js';
import { DOCKER, makeImage, makeIndex, OCI, type ImageIndex, type ImageManifest } from '../helpers/images.js';
import { startPullthrough, type RunningPullthrough } from '../helpers/pullthrough.js';

const REPO = 'library/app';
const ALL_TYPES = [OCI.index, DOCKER.list, OCI.manifest, DOCKER.manifest].join(', ');

describe('manifests', () => {
  let upstream: FakeUpstream;
  let cache: RunningPullthrough;
  let image: ImageManifest;
  let index: ImageIndex;
  let clock: number;

  before(async () => {
    upstream = await startFakeUpstream();
  });
  after(async () => {
    await upstream.close();
  });
  beforeEach(async () => {
    clock = Date.UTC(2026, 0, 1);
    cache = await startPullthrough({ upstreams: [{ host: 'docker.io', url: upstream.url, default: true, tagTtl: '5m' }], now: () => clock });
    image = makeImage({ layerSizes: [100] });
    index = makeIndex([image, makeImage({ layerSizes: [100], platform: { os: 'linux', architecture: 'arm64' } })]);
    upstream.addImage(REPO, 'single', image);
    upstream.addImage(REPO, 'multi', index);
    upstream.requests.length = 0;
  });
  afterEach(async () => {
    await cache.close();
  });

  const manifestGets = () => upstream.count('GET', new RegExp(`^/v2/${REPO}/manifests/`));
  const manifestHeads = () => upstream.count('HEAD', new RegExp(`^/v2/${REPO}/manifests/`));

  it('returns the exact bytes with Content-Type, Content-Length and Docker-Content-Digest', async () => {
    const res = await request(cache.url).get(`/v2/${REPO}/manifests/single`).set('accept', ALL_TYPES).buffer(true).parse((r, cb) => {
      const chunks: Buffer[] = [];
      r.on('data', (c: Buffer) => chunks.push(c));
      r.on('end', () => cb(null, Buffer.concat(chunks)));
    });
    assert.equal(res.status, 200);
    assert.ok((res.body as Buffer).equals(image.bytes));
    assert.equal(res.headers['content-type'], OCI.manifest);
    assert.equal(res.headers['content-length'], String(image.bytes.length));
    assert.equal(res.headers['docker-content-digest'], image.digest);
  });

  it('serves a tag from the cache inside tagTtl and by digest forever, fetching nothing again', async () => {
    await request(cache.url).get(`/v2/${REPO}/manifests/multi`).set('accept', ALL_TYPES).expect(200);
    assert.equal(manifestGets(), 1);
    clock += 60_000;
    const again = await request(cache.url).head(`/v2/${REPO}/manifests/multi`).set('accept', ALL_TYPES).expect(200);
    assert.equal(again.headers['docker-content-digest'], index.digest);
    await request(cache.url).get(`/v2/${REPO}/manifests/${index.digest}`).expect(200);
    assert.equal(manifestGets() + manifestHeads(), 1);
    clock += 365 * 86_400_000;
    await request(cache.url).get(`/v2/${REPO}/manifests/${index.digest}`).expect(200);
    // The bytes are never fetched again; only the expired anonymous access proof is renewed, by a HEAD.
    assert.equal(manifestGets(), 1);
    assert.equal(manifestHeads(), 1);
  });

  it('revalidates an expired tag with a HEAD only, and follows a retag with one GET', async () => {
    await request(cache.url).get(`/v2/${REPO}/manifests/single`).expect(200);
    clock += 6 * 60_000;
    await request(cache.url).get(`/v2/${REPO}/manifests/single`).expect(200);
    assert.equal(manifestHeads(), 1);
    assert.equal(manifestGets(), 1);

    const retagged = makeImage({ layerSizes: [50] });
    upstream.addImage(REPO, 'single', retagged);
    clock += 6 * 60_000;
    const res = await request(cache.url).get(`/v2/${REPO}/manifests/single`).expect(200);
    assert.equal(res.headers['docker-content-digest'], retagged.digest);
    assert.equal(manifestGets(), 2);
  });

  it('serves a cached tag with a Warning when the upstream fails revalidation, and 503 for what it lacks', async () => {
    await request(cache.url).get(`/v2/${REPO}/manifests/single`).expect(200);
    clock += 6 * 60_000;
    upstream.setFault(`${REPO}:single`, { type: 'status', status: 503 });
    const stale = await request(cache.url).get(`/v2/${REPO}/manifests/single`).expect(200);
    assert.match(String(stale.headers['warning']), /^111 pullthrough "Revalidation failed/);
    upstream.setFault(`${REPO}:single`, undefined);

    upstream.setFault(`${REPO}:multi`, { type: 'status', status: 500 });
    const missing = await request(cache.url).get(`/v2/${REPO}/manifests/multi`).expect(503);
    assert.equal(missing.body.errors[0].code, 'UNAVAILABLE');
    assert.match(missing.body.errors[0].message, /docker\.io/);
    upstream.setFault(`${REPO}:multi`, undefined);
  });

  it('passes an upstream 429 on as TOOMANYREQUESTS with its Retry-After', async () => {
    upstream.setFault(`${REPO}:single`, { type: 'status', status: 429, headers: { 'retry-after': '7' } });
    const res = await request(cache.url).get(`/v2/${REPO}/manifests/single`).expect(429);
    assert.equal(res.body.errors[0].code, 'TOOMANYREQUESTS');
    assert.equal(res.headers['retry-after'], '7');
    upstream.setFault(`${REPO}:single`, undefined);
  });

  it('verifies a manifest fetched by digest and stores nothing that does not match', async () => {
    upstream.setFault(image.digest, { type: 'corrupt' });
    const res = await request(cache.url).get(`/v2/${REPO}/manifests/${image.digest}`).expect(503);
    assert.match(res.body.errors[0].message, /does not match/);
    upstream.setFault(image.digest, undefined);
    await request(cache.url).get(`/v2/${REPO}/manifests/${image.digest}`).expect(200);
    assert.equal(manifestGets(), 2);
  });

  it('answers 404 MANIFEST_UNKNOWN for what the upstream does not have, and for HEAD with no body', async () => {
    const res = await request(cache.url).get(`/v2/${REPO}/manifests/nope`).expect(404);
    assert.equal(res.body.errors[0].code, 'MANIFEST_UNKNOWN');
    const head = await request(cache.url).head(`/v2/${REPO}/manifests/nope`).expect(404);
    assert.equal(head.text, undefined);
  });

  it('gives a client the manifest type it accepts, without changing the tag for the others', async () => {
    // A docker-only client asks for a tag that points at an OCI index: the upstream decides.
    const dockerOnly = await request(cache.url).get(`/v2/${REPO}/manifests/multi`).set('accept', DOCKER.manifest);
    assert.equal(dockerOnly.status, 200);
    assert.equal(upstream.requests.filter((r) => r.method === 'GET' && r.headers.accept === DOCKER.manifest).length, 1);
    const everyone = await request(cache.url).get(`/v2/${REPO}/manifests/multi`).set('accept', ALL_TYPES).expect(200);
    assert.equal(everyone.headers['docker-content-digest'], index.digest);
  });

  it('shares one revalidating HEAD among concurrent requests for an expired tag', async () => {
    await request(cache.url).get(`/v2/${REPO}/manifests/single`).expect(200);
    clock += 6 * 60_000;
    upstream.setFault(`${REPO}:single`, { type: 'delay', ms: 200 });
    await Promise.all(Array.from({ length: 8 }, () => request(cache.url).get(`/v2/${REPO}/manifests/single`).expect(200)));
    upstream.setFault(`${REPO}:single`, undefined);
    assert.equal(manifestHeads(), 1);
    assert.equal(manifestGets(), 1);
  });

  it('shares one upstream GET among concurrent requests for the same tag', async () => {
    await Promise.all(Array.from({ length: 8 }, () => request(cache.url).get(`/v2/${REPO}/manifests/single`).expect(200)));
    assert.equal(manifestGets(), 1);
  });

  it('refuses a manifest larger than maxManifestBytes', async () => {
    await cache.close();
    cache = await startPullthrough({ upstreams: [{ host: 'docker.io', url: upstream.url, default: true }], cache: { maxManifestBytes: '100B' } });
    const res = await request(cache.url).get(`/v2/${REPO}/manifests/single`).expect(503);
    assert.match(res.body.errors[0].message, /100-byte limit/);
  });

  it('serves a v2s2 manifest list and its docker manifests by digest', async () => {
    const docker = makeImage({ layerSizes: [10], format: 'docker' });
    const list = makeIndex([docker], 'docker');
    upstream.addImage(REPO, 'legacy', list);
    const res = await request(cache.url).get(`/v2/${REPO}/manifests/legacy`).set('accept', ALL_TYPES).expect(200);
    assert.equal(res.headers['content-type'], DOCKER.list);
    const child = await request(cache.url).get(`/v2/${REPO}/manifests/${docker.digest}`).set('accept', DOCKER.manifest).expect(200);
    assert.equal(child.headers['content-type'], DOCKER.manifest);
  });
});
