import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import request from 'supertest';
import { startFakeUpstream, type FakeUpstream } from '../fakes/fake-upstream.js';
import { makeImage, type ImageManifest } from '../helpers/images.js';
import { startPullthrough, type RunningPullthrough } from '../helpers/pullthrough.js';

describe('registry API: routing, errors, listings', () => {
  let hub: FakeUpstream;
  let ghcr: FakeUpstream;
  let cache: RunningPullthrough;
  let hubImage: ImageManifest;
  let ghcrImage: ImageManifest;

  before(async () => {
    hub = await startFakeUpstream();
    ghcr = await startFakeUpstream();
    hubImage = makeImage({ layerSizes: [10] });
    ghcrImage = makeImage({ layerSizes: [10] });
    hub.addImage('library/nginx', '1.25', hubImage);
    hub.addImage('library/nginx', '1.26', hubImage);
    hub.addImage('library/nginx', '1.27', hubImage);
    ghcr.addImage('acme/tool', '1.0', ghcrImage);
    ghcr.addImage('library/nginx', '1.25', ghcrImage);
    cache = await startPullthrough({
      upstreams: [
        { host: 'docker.io', url: hub.url, default: true },
        { host: 'ghcr.io', url: ghcr.url },
      ],
    });
  });
  after(async () => {
    await cache.close();
    await hub.close();
    await ghcr.close();
  });

  it('challenges GET /v2/ towards its token endpoint, which answers anonymous clients too', async () => {
    const challenged = await request(cache.url).get('/v2/').expect(401);
    assert.equal(challenged.headers['docker-distribution-api-version'], 'registry/2.0');
    const realm = /^Bearer realm="([^"]+)",service="pullthrough"$/.exec(String(challenged.headers['www-authenticate']))?.[1];
    assert.equal(realm, `${cache.url}/_pullthrough/token`);
    const token = (await request(cache.url).get('/_pullthrough/token?service=pullthrough').expect(200)).body.token as string;
    const res = await request(cache.url).get('/v2/').set('authorization', `Bearer ${token}`).expect(200);
    assert.equal(res.headers['docker-distribution-api-version'], 'registry/2.0');
    await request(cache.url).get('/v2/').set('authorization', 'Bearer not-a-token-of-ours').expect(401);
  });

  it("routes by containerd's ns= parameter, by a host path prefix and by default, never mixing tags", async () => {
    const byNs = await request(cache.url).get('/v2/library/nginx/manifests/1.25?ns=ghcr.io').expect(200);
    assert.equal(byNs.headers['docker-content-digest'], ghcrImage.digest);
    const byPrefix = await request(cache.url).get('/v2/ghcr.io/acme/tool/manifests/1.0').expect(200);
    assert.equal(byPrefix.headers['docker-content-digest'], ghcrImage.digest);
    const byDefault = await request(cache.url).get('/v2/library/nginx/manifests/1.25').expect(200);
    assert.equal(byDefault.headers['docker-content-digest'], hubImage.digest);
    const hubByNs = await request(cache.url).get('/v2/library/nginx/manifests/1.25?ns=docker.io').expect(200);
    assert.equal(hubByNs.headers['docker-content-digest'], hubImage.digest);
  });

  it('adds library/ to single-component Docker Hub names, as docker clients do', async () => {
    const res = await request(cache.url).get('/v2/nginx/manifests/1.25?ns=docker.io').expect(200);
    assert.equal(res.headers['docker-content-digest'], hubImage.digest);
    assert.ok(hub.requests.some((r) => r.path === '/v2/library/nginx/manifests/1.25'));
    assert.ok(hub.requests.every((r) => !r.query.has('ns')), 'ns= is never sent upstream');
  });

  it('answers a host no upstream serves with NAME_UNKNOWN listing the configured hosts', async () => {
    const res = await request(cache.url).get('/v2/quay.io/org/app/manifests/1').expect(404);
    assert.equal(res.body.errors[0].code, 'NAME_UNKNOWN');
    assert.match(res.body.errors[0].message, /docker\.io, ghcr\.io/);
  });

  it('rejects bad names and digests with 400, never a 500 or a path outside storage', async () => {
    const cases: Array<[string, string]> = [
      ['/v2/library/Nginx/manifests/1', 'NAME_INVALID'],
      ['/v2/library/ng..inx/manifests/1', 'NAME_INVALID'],
      ['/v2/library/nginx/blobs/sha256:..%2F..%2F..%2Fetc%2Fpasswd', 'DIGEST_INVALID'],
      ['/v2/library/nginx/blobs/sha256:abc', 'DIGEST_INVALID'],
      ['/v2/library/nginx/blobs/md5:d41d8cd98f00b204e9800998ecf8427e', 'DIGEST_INVALID'],
      ['/v2/library/nginx/blobs/sha256:' + 'A'.repeat(64), 'DIGEST_INVALID'],
      ['/v2/library/nginx/manifests/sha256:' + '0'.repeat(63), 'DIGEST_INVALID'],
      ['/v2/library/%2e%2e/%2e%2e/blobs/sha256:' + '0'.repeat(64), 'NAME_INVALID'],
    ];
    for (const [path, code] of cases) {
      const res = await request(cache.url).get(path);
      assert.equal(res.status, 400, path);
      assert.equal(res.body.errors[0].code, code, path);
    }
  });

  it('answers content the upstream lacks with 404 BLOB_UNKNOWN and MANIFEST_UNKNOWN', async () => {
    const blob = await request(cache.url).get(`/v2/library/nginx/blobs/sha256:${'0'.repeat(64)}`).expect(404);
    assert.equal(blob.body.errors[0].code, 'BLOB_UNKNOWN');
    const manifest = await request(cache.url).get(`/v2/library/nginx/manifests/sha256:${'0'.repeat(64)}`).expect(404);
    assert.equal(manifest.body.errors[0].code, 'MANIFEST_UNKNOWN');
    // No manifest can have a reference that is not a valid tag (distribution answers the same).
    const badTag = await request(cache.url).get('/v2/library/nginx/manifests/-bad-tag').expect(404);
    assert.equal(badTag.body.errors[0].code, 'MANIFEST_UNKNOWN');
  });

  it('refuses push and delete with 405 UNSUPPORTED', async () => {
    const calls = [
      request(cache.url).put('/v2/library/nginx/manifests/1.25').send('{}'),
      request(cache.url).delete('/v2/library/nginx/manifests/1.25'),
      request(cache.url).post('/v2/library/nginx/blobs/uploads/'),
      request(cache.url).patch('/v2/library/nginx/blobs/uploads/abc'),
      request(cache.url).delete(`/v2/library/nginx/blobs/${hubImage.config.digest}`),
    ];
    for (const res of await Promise.all(calls)) {
      assert.equal(res.status, 405);
      assert.equal(res.body.errors[0].code, 'UNSUPPORTED');
    }
  });

  it('lists tags from the upstream with n and last, and a Link to the next page', async () => {
    const page = await request(cache.url).get('/v2/library/nginx/tags/list?n=2').expect(200);
    assert.deepEqual(page.body, { name: 'library/nginx', tags: ['1.25', '1.26'] });
    assert.equal(page.headers['link'], '</v2/library/nginx/tags/list?n=2&last=1.26>; rel="next"');
    const rest = await request(cache.url).get('/v2/library/nginx/tags/list?n=2&last=1.26').expect(200);
    assert.deepEqual(rest.body.tags, ['1.27']);
    await request(cache.url).get('/v2/library/nginx/tags/list?n=-1').expect(400);
    const unknown = await request(cache.url).get('/v2/library/nope/tags/list').expect(404);
    assert.equal(unknown.body.errors[0].code, 'NAME_UNKNOWN');
  });

  it('lists the cached repositories in /v2/_catalog, other upstreams by host prefix', async () => {
    const res = await request(cache.url).get('/v2/_catalog').expect(200);
    assert.ok(res.body.repositories.includes('library/nginx'));
    assert.ok(res.body.repositories.includes('ghcr.io/acme/tool'));
    const page = await request(cache.url).get('/v2/_catalog?n=1').expect(200);
    assert.equal(page.body.repositories.length, 1);
    assert.match(String(page.headers['link']), /rel="next"/);
  });

  it('answers 503 UNAVAILABLE naming the upstream when it cannot be reached', async () => {
    // Port 1 on loopback: nothing listens there. (A port freed by closing a server could be handed
    // straight back to the next listener, even this very pullthrough, which then asks itself.)
    const url = 'http://127.0.0.1:1';
    const isolated = await startPullthrough({ upstreams: [{ host: 'docker.io', url, default: true, timeouts: { connect: '2s' } }] });
    try {
      const res = await request(isolated.url).get('/v2/library/nginx/manifests/1.25').expect(503);
      assert.equal(res.body.errors[0].code, 'UNAVAILABLE');
      assert.match(res.body.errors[0].message, /docker\.io/);
      await request(isolated.url).get(`/v2/library/nginx/blobs/${hubImage.config.digest}`).expect(503);
    } finally {
      await isolated.close();
    }
  });
});

describe('catch-all upstream', () => {
  it('reaches unlisted registries at their own host only when configured, and never a malformed one', async () => {
    const registry = await startFakeUpstream();
    const image = makeImage({ layerSizes: [10] });
    registry.addImage('team/app', '1.0', image);
    const strict = await startPullthrough({ upstreams: [{ host: 'docker.io', url: registry.url, default: true }] });
    // The test registry is on loopback, which a catch-all reaches only where the operator allows it.
    const open = await startPullthrough({ upstreams: [{ host: 'docker.io', url: registry.url, default: true }, { host: '*', url: 'http://{host}', allowPrivate: ['127.0.0.0/8'] }] });
    try {
      await request(strict.url).get(`/v2/${registry.host}/team/app/manifests/1.0`).expect(404);
      const res = await request(open.url).get(`/v2/${registry.host}/team/app/manifests/1.0`).expect(200);
      assert.equal(res.headers['docker-content-digest'], image.digest);
      await request(open.url).get(`/v2/team/app/manifests/1.0?ns=${encodeURIComponent(registry.host)}`).expect(200);
      // A malformed host is the client's mistake (400), refused before any routing.
      const bad = await request(open.url).get(`/v2/team/app/manifests/1.0?ns=${encodeURIComponent('user@evil.example')}`).expect(400);
      assert.equal(bad.body.errors[0].code, 'NAME_INVALID');
    } finally {
      await strict.close();
      await open.close();
      await registry.close();
    }
  });
});
