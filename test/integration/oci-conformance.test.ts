/**
 * The OCI distribution-spec conformance suite (opencontainers/distribution-spec v1.1.1,
 * `conformance/`), pull and content-discovery workflows, as a pull-only cache can meet them:
 * each spec below names the test of ours that covers it. Setup, push, delete and teardown
 * specs need write access and do not apply (pullthrough answers them 405 UNSUPPORTED, as the
 * suite allows for deletes).
 *
 * 01_pull_test.go
 * - "HEAD request to nonexistent blob should result in 404 response"      → here: 'blobs: HEAD and GET …'
 * - "HEAD request to existing blob should yield 200" (Docker-Content-Digest) → here: same test
 * - "GET nonexistent blob should result in 404 response"                   → here: same test
 * - "GET request to existing blob URL should yield 200"                    → here: same test
 * - "HEAD request to nonexistent manifest should return 404" (.INVALID_MANIFEST_NAME) → here: 'an invalid tag …'
 * - "HEAD request to manifest path (digest) should yield 200 response"     → here: 'manifests: HEAD and GET …'
 * - "HEAD request to manifest path (tag) should yield 200 response"        → here: same test
 * - "GET nonexistent manifest should return 404"                           → here: 'an invalid tag …'
 * - "GET request to manifest path (digest) should yield 200 response"      → here: 'manifests: HEAD and GET …'
 * - "GET request to manifest path (tag) should yield 200 response"         → here: same test
 * - "400 response body should contain OCI-conforming JSON message" (a PUT) → api.test.ts 'answers push and delete with 405 …'
 * 01_base_api_route_test.go / the "API Version Check" → api.test.ts 'challenges GET /v2/ …' (Docker-Distribution-API-Version)
 * 03_discovery_test.go, listing tags
 * - "GET request to list tags should yield 200 response"                   → here: 'tags/list: every upstream page …'
 * - "GET number of tags should be limitable by `n` query parameter"        → here: same test
 * - "GET start of tag is set by `last` query parameter"                    → here: same test
 * 03_discovery_test.go, listing references → referrers.test.ts
 * - "GET request to nonexistent blob should result in empty 200 response"  → 'answers an empty index for a digest with no referrers'
 * - "GET request to existing blob should yield 200" (annotations kept)      → 'upstream with the API: …'
 * - "GET request to existing blob with filter should yield 200"            → 'upstream with the API: …' (OCI-Filters-Applied)
 * - "GET request to missing manifest should yield 200"                     → 'referrers of a subject the upstream does not hold …'
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import request from 'supertest';
import { startFakeUpstream, type FakeUpstream } from '../fakes/fake-upstream.js';
import { makeImage, type ImageManifest } from '../helpers/images.js';
import { startPullthrough, type RunningPullthrough } from '../helpers/pullthrough.js';

const MISSING = `sha256:${'0'.repeat(64)}`;

describe('distribution-spec conformance (pull and discovery) through the cache', () => {
  let hub: FakeUpstream;
  let ghcr: FakeUpstream;
  let cache: RunningPullthrough;
  let image: ImageManifest;
  const tags = Array.from({ length: 23 }, (_, i) => `t${String(i).padStart(2, '0')}`);

  before(async () => {
    hub = await startFakeUpstream({ tagPageSize: 5 });
    ghcr = await startFakeUpstream({ tagPageSize: 4 });
    image = makeImage({ layerSizes: [10] });
    for (const tag of tags) hub.addImage('library/many', tag, image);
    for (const tag of tags) ghcr.addImage('acme/many', tag, image);
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

  it('blobs: HEAD and GET of an existing blob answer 200 with Docker-Content-Digest and Content-Length, a missing one 404', async () => {
    const head = await request(cache.url).head(`/v2/library/many/blobs/${image.config.digest}`).expect(200);
    assert.equal(head.headers['docker-content-digest'], image.config.digest);
    assert.equal(head.headers['content-length'], String(image.config.bytes.length));
    await request(cache.url).get(`/v2/library/many/blobs/${image.config.digest}`).expect(200);
    const cachedHead = await request(cache.url).head(`/v2/library/many/blobs/${image.config.digest}`).expect(200);
    assert.equal(cachedHead.headers['docker-content-digest'], image.config.digest);
    assert.equal(cachedHead.headers['content-length'], String(image.config.bytes.length));
    await request(cache.url).head(`/v2/library/many/blobs/${MISSING}`).expect(404);
    const missing = await request(cache.url).get(`/v2/library/many/blobs/${MISSING}`).expect(404);
    assert.equal(missing.body.errors[0].code, 'BLOB_UNKNOWN');
  });

  it('manifests: HEAD and GET by tag and by digest answer 200 with Docker-Content-Digest and Content-Length', async () => {
    for (const reference of ['t00', image.digest]) {
      for (let round = 0; round < 2; round++) {
        const head = await request(cache.url).head(`/v2/library/many/manifests/${reference}`).set('accept', image.mediaType).expect(200);
        assert.equal(head.headers['docker-content-digest'], image.digest);
        assert.equal(head.headers['content-length'], String(image.bytes.length));
        const get = await request(cache.url).get(`/v2/library/many/manifests/${reference}`).set('accept', image.mediaType).expect(200);
        assert.equal(get.headers['docker-content-digest'], image.digest);
      }
    }
  });

  it('an invalid tag (.INVALID_MANIFEST_NAME) is an unknown manifest: 404 MANIFEST_UNKNOWN on GET, a bodiless 404 on HEAD', async () => {
    const get = await request(cache.url).get('/v2/library/many/manifests/.INVALID_MANIFEST_NAME').expect(404);
    assert.equal(get.body.errors[0].code, 'MANIFEST_UNKNOWN');
    const head = await request(cache.url).head('/v2/library/many/manifests/.INVALID_MANIFEST_NAME').expect(404);
    assert.equal(head.text, undefined);
    assert.equal(hub.count('GET', /INVALID/) + hub.count('HEAD', /INVALID/), 0, 'never asked upstream');
    // A malformed digest stays a 400: the client sent something that can never be valid.
    await request(cache.url).get('/v2/library/many/manifests/sha256:totallywrong').expect(400);
  });

  it('tags/list: every upstream page followed, lexical order, n, last, n=0, and a Link that keeps ns=', async () => {
    const all = await request(cache.url).get('/v2/library/many/tags/list').expect(200);
    assert.deepEqual(all.body, { name: 'library/many', tags });
    assert.equal(all.headers['link'], undefined);
    const upstreamPages = hub.count('GET', '/v2/library/many/tags/list');
    assert.equal(upstreamPages, 5, 'the upstream pages through 5 at a time');

    const half = await request(cache.url).get('/v2/library/many/tags/list?n=11').expect(200);
    assert.deepEqual(half.body.tags, tags.slice(0, 11));
    assert.equal(half.headers['link'], '</v2/library/many/tags/list?n=11&last=t10>; rel="next"');
    const rest = await request(cache.url).get('/v2/library/many/tags/list?n=11&last=t10').expect(200);
    assert.deepEqual(rest.body.tags, tags.slice(11, 22));
    const tail = await request(cache.url).get('/v2/library/many/tags/list?n=11&last=t21').expect(200);
    assert.deepEqual(tail.body.tags, ['t22']);
    assert.equal(tail.headers['link'], undefined);
    const between = await request(cache.url).get('/v2/library/many/tags/list?last=t055').expect(200);
    assert.deepEqual(between.body.tags, tags.slice(6));
    const none = await request(cache.url).get('/v2/library/many/tags/list?n=0').expect(200);
    assert.deepEqual(none.body.tags, []);
    assert.equal(none.headers['link'], undefined);
    assert.equal(hub.count('GET', '/v2/library/many/tags/list'), upstreamPages, 'a client paging through reads the upstream list once');

    // containerd follows a Link only on the origin and path it asked: ns= must survive, or page 2 goes to the default upstream.
    const byNs = await request(cache.url).get('/v2/acme/many/tags/list?n=10&ns=ghcr.io').expect(200);
    assert.deepEqual(byNs.body.tags, tags.slice(0, 10));
    const link = /^<([^>]+)>; rel="next"$/.exec(String(byNs.headers['link']))?.[1];
    assert.equal(link, '/v2/acme/many/tags/list?n=10&last=t09&ns=ghcr.io');
    const second = await request(cache.url).get(link!).expect(200);
    assert.deepEqual(second.body.tags, tags.slice(10, 20));

    const byPrefix = await request(cache.url).get('/v2/ghcr.io/acme/many/tags/list?n=20').expect(200);
    assert.equal(byPrefix.headers['link'], '</v2/ghcr.io/acme/many/tags/list?n=20&last=t19>; rel="next"');
  });

  it('tags/list while the upstream is down: the cached tags, paged the same way, with a Warning', async () => {
    const upstream = await startFakeUpstream();
    const isolated = await startPullthrough({ upstreams: [{ host: 'docker.io', url: upstream.url, default: true }] });
    try {
      for (const tag of ['a', 'b', 'c']) {
        upstream.addImage('library/few', tag, image);
        await request(isolated.url).get(`/v2/library/few/manifests/${tag}`).expect(200);
      }
      await upstream.close();
      const page = await request(isolated.url).get('/v2/library/few/tags/list?n=2').expect(200);
      assert.deepEqual(page.body.tags, ['a', 'b']);
      assert.match(String(page.headers['warning']), /^111 pullthrough/);
      assert.equal(page.headers['link'], '</v2/library/few/tags/list?n=2&last=b>; rel="next"');
    } finally {
      await isolated.close();
    }
  });

  it('_catalog pages with n and last over what the cache holds', async () => {
    await request(cache.url).get('/v2/library/many/manifests/t01').expect(200);
    await request(cache.url).get('/v2/acme/many/manifests/t01?ns=ghcr.io').expect(200);
    const all = await request(cache.url).get('/v2/_catalog').expect(200);
    assert.deepEqual(all.body.repositories, ['ghcr.io/acme/many', 'library/many']);
    const first = await request(cache.url).get('/v2/_catalog?n=1').expect(200);
    assert.deepEqual(first.body.repositories, ['ghcr.io/acme/many']);
    assert.equal(first.headers['link'], '</v2/_catalog?n=1&last=ghcr.io%2Facme%2Fmany>; rel="next"');
    const second = await request(cache.url).get('/v2/_catalog?n=1&last=ghcr.io%2Facme%2Fmany').expect(200);
    assert.deepEqual(second.body.repositories, ['library/many']);
    assert.equal(second.headers['link'], undefined);
    const none = await request(cache.url).get('/v2/_catalog?n=0').expect(200);
    assert.deepEqual(none.body.repositories, []);
  });
});
