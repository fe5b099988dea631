import assert from 'node:assert/strict';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import request from 'supertest';
import { startFakeUpstream, type FakeUpstream } from '../fakes/fake-upstream.js';
import { blobsOf, makeImage, type ImageManifest } from '../helpers/images.js';
import { waitUntil } from '../helpers/processes.js';
import { metricValue, startPullthrough, type RunningPullthrough } from '../helpers/pullthrough.js';

describe('metrics, readiness and the status page', () => {
  let upstream: FakeUpstream;
  let cache: RunningPullthrough;
  let image: ImageManifest;

  before(async () => {
    upstream = await startFakeUpstream({ responseHeaders: { 'ratelimit-limit': '100;w=21600', 'ratelimit-remaining': '76;w=21600' } });
    image = makeImage({ layerSizes: [20_000, 40_000] });
    upstream.addImage('library/app', '1.0', image);
    cache = await startPullthrough({ upstreams: [{ host: 'docker.io', url: upstream.url, default: true }], captureRequests: true });
  });
  after(async () => {
    await cache.close();
    await upstream.close();
  });

  async function pull(): Promise<void> {
    await request(cache.url).get('/v2/library/app/manifests/1.0').expect(200);
    for (const blob of blobsOf(image)) await request(cache.url).get(`/v2/library/app/blobs/${blob.digest}`).expect(200);
  }

  it('counts a cold pull as misses from upstream and a warm pull as hits from the cache', async () => {
    // Byte and request counters move when the server finishes a response, which may be just
    // after the client has read its last byte: wait for the value rather than race it.
    const m = async (name: string, labels: Record<string, string> = {}, expected?: number) => {
      if (expected !== undefined) await waitUntil(async () => (await metricValue(cache.url, name, labels)) === expected, `${name} to reach ${expected}`, 5_000).catch(() => undefined);
      return metricValue(cache.url, name, labels);
    };
    const imageBytes = blobsOf(image).reduce((sum, b) => sum + b.bytes.length, 0);

    await pull();
    assert.equal(await m('pullthrough_cache_lookups_total', { kind: 'blob', result: 'miss' }), 3);
    assert.equal(await m('pullthrough_cache_lookups_total', { kind: 'tag', result: 'miss' }), 1);
    assert.equal(await m('pullthrough_upstream_requests_total', { upstream: 'docker.io', kind: 'blob', status: '200' }), 3);
    assert.equal(await m('pullthrough_served_bytes_total', { source: 'upstream' }, imageBytes + image.bytes.length), imageBytes + image.bytes.length);
    assert.equal(await m('pullthrough_http_requests_total', { kind: 'blob', result: 'miss', status: '200' }, 3), 3);
    // Blobs are indexed when their fill commits, just after the client's last byte.
    assert.equal(await m('pullthrough_cache_size_bytes', {}, imageBytes + image.bytes.length), imageBytes + image.bytes.length);
    assert.equal(await m('pullthrough_cache_objects', {}, 4), 4);
    assert.equal(await m('pullthrough_upstream_ratelimit_remaining', { upstream: 'docker.io' }), 76);
    assert.equal(await m('pullthrough_upstream_ratelimit_limit', { upstream: 'docker.io' }), 100);

    await pull();
    assert.equal(await m('pullthrough_cache_lookups_total', { kind: 'blob', result: 'hit' }), 3);
    assert.equal(await m('pullthrough_cache_lookups_total', { kind: 'tag', result: 'hit' }), 1);
    assert.equal(await m('pullthrough_upstream_requests_total', { kind: 'blob' }), 3, 'no new upstream requests');
    assert.equal(await m('pullthrough_served_bytes_total', { source: 'cache' }, imageBytes + image.bytes.length), imageBytes + image.bytes.length);
    assert.equal(await m('pullthrough_http_requests_total', { kind: 'blob', result: 'hit', status: '200' }, 3), 3);
    assert.ok((await m('pullthrough_http_request_duration_seconds_count', { kind: 'blob', source: 'cache' })) >= 3);
    assert.ok((await m('pullthrough_upstream_request_duration_seconds_count', { upstream: 'docker.io', kind: 'blob' })) >= 3);
  });

  it('writes one JSON access-log line per request, with cache result and no credentials', async () => {
    const basic = `Basic ${Buffer.from('someone:secret-password').toString('base64')}`;
    await request(cache.url).get(`/v2/library/app/blobs/${image.config.digest}`).set('authorization', basic).expect(200);
    // The access log is written when the server closes the response, which may follow the client's read.
    const find = () => cache.requests.find((r) => r.path === `/v2/library/app/blobs/${image.config.digest}` && (r as unknown as { result: string }).result === 'hit');
    await waitUntil(async () => find() !== undefined, 'the access-log line');
    const line = find();
    assert.equal(line?.method, 'GET');
    assert.equal(line?.status, 200);
    assert.equal((line as unknown as { result: string }).result, 'hit');
    assert.equal((line as unknown as { upstream: string }).upstream, 'docker.io');
    assert.ok(!JSON.stringify(cache.requests).includes('secret-password'));
    assert.ok(!JSON.stringify(cache.requests).includes(basic.slice(6)));
  });

  it('counts the GET /v2/ → 401 → token handshake as a challenge, not an error', async () => {
    const first = await request(cache.url).get('/v2/').expect(401);
    const realm = /realm="([^"]+)"/.exec(first.headers['www-authenticate'] ?? '')?.[1];
    assert.ok(realm);
    const { token } = (await request(realm).get('').expect(200)).body as { token: string };
    await request(cache.url).get('/v2/').set('authorization', `Bearer ${token}`).expect(200);
    await waitUntil(async () => (await metricValue(cache.url, 'pullthrough_http_requests_total', { kind: 'base', status: '401' })) === 1, 'the 401 to be counted', 5_000);
    assert.equal(await metricValue(cache.url, 'pullthrough_http_requests_total', { kind: 'base', result: 'challenge', status: '401' }), 1);
    assert.equal(await metricValue(cache.url, 'pullthrough_http_requests_total', { result: 'error' }), 0, 'no errors in a handshake');
    const line = cache.requests.find((r) => r.path === '/v2/' && r.status === 401) as unknown as { result: string } | undefined;
    assert.equal(line?.result, 'challenge');
    // Credentials the mirror cannot accept are an error, not a challenge.
    await request(cache.url).get('/v2/').set('authorization', 'Bearer not-a-token-we-issued').expect(401);
    await waitUntil(async () => (await metricValue(cache.url, 'pullthrough_http_requests_total', { result: 'error', status: '401' })) === 1, 'a rejected token counted as an error', 5_000);
  });

  it('is ready while storage is writable, and says why not otherwise', async () => {
    const ready = await request(cache.url).get('/readyz').expect(200);
    assert.deepEqual(ready.body.checks, { storage: 'ok', index: 'ok' });
    await request(cache.url).get('/healthz').expect(200);

    const tmp = path.join(cache.storageRoot, 'tmp');
    await rm(tmp, { recursive: true });
    await writeFile(tmp, 'not a directory');
    try {
      const broken = await request(cache.url).get('/readyz').expect(503);
      assert.match(broken.body.checks.storage, /^not writable/);
      await request(cache.url).get('/healthz').expect(200);
    } finally {
      await rm(tmp);
      await mkdir(tmp);
    }
    await request(cache.url).get('/readyz').expect(200);
  });

  it('reports hit ratio, bytes by source, upstream health and the most pulled images', async () => {
    const report = (await request(cache.url).get('/_pullthrough/status').expect(200)).body;
    assert.ok(report.hitRatio > 0 && report.hitRatio < 1);
    assert.ok(report.servedBytes.cache > 0);
    assert.equal(report.upstreams[0].host, 'docker.io');
    assert.equal(report.upstreams[0].isDefault, true);
    assert.equal(report.upstreams[0].rateLimitRemaining, 76);
    assert.equal(report.mostPulled[0].repository, 'library/app');
    assert.equal(report.mostPulled[0].pulls, 2);
    assert.equal(report.largest[0].sizeBytes, blobsOf(image).reduce((sum, b) => sum + b.bytes.length, 0) + image.bytes.length);

    const page = await request(cache.url).get('/').expect(200);
    assert.match(page.headers['content-type'] ?? '', /text\/html/);
    assert.match(page.text, /docker\.io\/library\/app:1\.0/);
    // The chart of bytes served in the last hour, drawn on the server: both pulls are in it.
    const chart = /<svg id="served-chart"[\s\S]*?<\/svg>/.exec(page.text)?.[0] ?? '';
    assert.match(chart, /<title>bytes served in the last 60 min: [1-9][\d.]* KiB from cache, [1-9][\d.]* KiB from upstream<\/title>/);
    assert.doesNotMatch(page.text, /<script/i);
  });
});

describe('an upstream failure, in the log', () => {
  it("names the cause on the request's access-log line, not in the client's error body", async () => {
    const cache = await startPullthrough({ upstreams: [{ host: 'docker.io', url: 'http://127.0.0.1:1', default: true }], captureRequests: true });
    try {
      const response = await request(cache.url).get('/v2/library/app/manifests/1.0').expect(503);
      await waitUntil(async () => cache.requests.some((r) => r.path === '/v2/library/app/manifests/1.0'), 'the access-log line');
      const line = cache.requests.find((r) => r.path === '/v2/library/app/manifests/1.0') as unknown as { result: string; upstreamError?: string };
      assert.equal(line.result, 'error');
      assert.match(line.upstreamError ?? '', /ECONNREFUSED/);
      assert.doesNotMatch(JSON.stringify(response.body), /upstreamError/);
    } finally {
      await cache.close();
    }
  });
});
