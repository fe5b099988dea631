import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import request from 'supertest';
import { startFakeUpstream, type FakeUpstream } from '../fakes/fake-upstream.js';
import { makeImage, type ImageManifest } from '../helpers/images.js';
import { startPullthrough, type RunningPullthrough } from '../helpers/pullthrough.js';

describe('upstream token auth and redirects', () => {
  let registry: FakeUpstream;
  let cdn: FakeUpstream;
  let cache: RunningPullthrough;
  let image: ImageManifest;

  before(async () => {
    registry = await startFakeUpstream({ bearer: true });
    cdn = await startFakeUpstream();
    image = makeImage({ layerSizes: [1000, 2000] });
    registry.addImage('library/app', '1.0', image);
    for (const layer of image.layers) cdn.addBlob(layer);
    // The CDN is on loopback like everything here: an origin the operator must list.
    cache = await startPullthrough({ upstreams: [{ host: 'docker.io', url: registry.url, default: true, allowOrigins: [cdn.url] }] });
  });
  after(async () => {
    await cache.close();
    await registry.close();
    await cdn.close();
  });

  it('answers the Bearer challenge once and reuses the token until it expires', async () => {
    await request(cache.url).get('/v2/library/app/manifests/1.0').expect(200);
    await request(cache.url).get(`/v2/library/app/manifests/${image.digest}`).expect(200);
    await request(cache.url).get(`/v2/library/app/blobs/${image.config.digest}`).expect(200);
    assert.equal(registry.count('GET', '/token'), 1);
    const token = registry.requests.find((r) => r.path === '/token');
    assert.equal(token?.query.get('scope'), 'repository:library/app:pull');
    assert.equal(token?.query.get('service'), 'fake');
  });

  it('follows a redirect to a CDN without sending it the credentials', async () => {
    const layer = image.layers[0]!;
    registry.setFault(layer.digest, { type: 'redirect', location: `${cdn.url}/v2/library/app/blobs/${layer.digest}?signature=x` });
    const res = await request(cache.url).get(`/v2/library/app/blobs/${layer.digest}`).buffer(true).parse((r, cb) => {
      const chunks: Buffer[] = [];
      r.on('data', (c: Buffer) => chunks.push(c));
      r.on('end', () => cb(null, Buffer.concat(chunks)));
    });
    assert.equal(res.status, 200);
    assert.ok((res.body as Buffer).equals(layer.bytes));
    const cdnRequest = cdn.requests.find((r) => r.path.endsWith(layer.digest));
    assert.ok(cdnRequest, 'the CDN was asked');
    assert.equal(cdnRequest.headers.authorization, undefined);
    assert.equal(cdnRequest.query.get('signature'), 'x');
  });
});
