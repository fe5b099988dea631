import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import request from 'supertest';
import { startFakeUpstream, type FakeUpstream } from '../fakes/fake-upstream.js';
import { blobsOf, makeImage, type ImageManifest } from '../helpers/images.js';
import { metricValue, startPullthrough, type RunningPullthrough, type UpstreamSpec } from '../helpers/pullthrough.js';

const REPO = 'library/app';

describe('imagePullPolicy semantics: TTL rules, negative cache, breaker, offline', () => {
  let upstream: FakeUpstream;
  let cache: RunningPullthrough;
  let image: ImageManifest;
  let clock: number;

  async function start(spec: Partial<UpstreamSpec> = {}, extra: { offline?: boolean; storageRoot?: string } = {}) {
    cache = await startPullthrough({
      upstreams: [{ host: 'docker.io', url: upstream.url, default: true, ...spec }],
      now: () => clock,
      ...(extra.storageRoot && { storageRoot: extra.storageRoot }),
      ...(extra.offline !== undefined && { offline: extra.offline }),
    });
  }

  before(async () => {
    upstream = await startFakeUpstream();
  });
  after(async () => {
    await upstream.close();
  });
  beforeEach(() => {
    clock = Date.UTC(2026, 0, 1);
    image = makeImage({ layerSizes: [1000] });
    for (const tag of ['latest', '1.2.3', '1.2']) upstream.addImage(REPO, tag, image);
    upstream.requests.length = 0;
  });
  afterEach(async () => {
    await cache?.close();
  });

  const heads = (tag: string) => upstream.count('HEAD', `/v2/${REPO}/manifests/${tag}`);
  const gets = (tag: string) => upstream.count('GET', `/v2/${REPO}/manifests/${tag}`);

  it('applies per-tag TTL rules: latest every time, release tags for a week, the rest by tagTtl', async () => {
    await start({ tagTtl: '5m', tagTtlRules: [{ match: 'latest', ttl: '0' }, { regex: '^\\d+\\.\\d+\\.\\d+$', ttl: '7d' }] });
    for (const tag of ['latest', '1.2.3', '1.2']) await request(cache.url).get(`/v2/${REPO}/manifests/${tag}`).expect(200);
    clock += 10 * 60_000;
    for (let i = 0; i < 3; i++) {
      for (const tag of ['latest', '1.2.3', '1.2']) await request(cache.url).get(`/v2/${REPO}/manifests/${tag}`).expect(200);
    }
    assert.equal(heads('latest'), 3, 'latest: a HEAD on every pull');
    assert.equal(heads('1.2.3'), 0, 'release tag: still fresh');
    assert.equal(heads('1.2'), 1, 'default: one HEAD once 5m passed, fresh again after it');
    assert.equal(gets('latest') + gets('1.2.3') + gets('1.2'), 3, 'one GET per tag, ever');
  });

  it('remembers a 404 briefly, then sees a newly pushed tag', async () => {
    await start({ notFoundTtl: '10s' });
    for (let i = 0; i < 10; i++) await request(cache.url).get(`/v2/${REPO}/manifests/soon`).expect(404);
    assert.equal(gets('soon'), 1, 'ten pods, one upstream request');
    upstream.addImage(REPO, 'soon', image);
    await request(cache.url).get(`/v2/${REPO}/manifests/soon`).expect(404);
    clock += 10_000;
    await request(cache.url).get(`/v2/${REPO}/manifests/soon`).expect(200);
    assert.equal(gets('soon'), 2);
  });

  it('opens the breaker after consecutive failures, answers at once, and closes after a good probe', async () => {
    await start({ breaker: { failures: 2, openFor: '30s' }, tagTtl: '0' });
    await request(cache.url).get(`/v2/${REPO}/manifests/latest`).expect(200);
    upstream.setFault(`${REPO}:latest`, { type: 'status', status: 502 });
    upstream.setFault(`${REPO}:1.2`, { type: 'status', status: 502 });
    await request(cache.url).get(`/v2/${REPO}/manifests/1.2`).expect(503);
    await request(cache.url).get(`/v2/${REPO}/manifests/1.2`).expect(503);
    assert.equal(await metricValue(cache.url, 'pullthrough_upstream_breaker_open', { upstream: 'docker.io' }), 1);
    const before = upstream.requests.length;
    const open = await request(cache.url).get(`/v2/${REPO}/manifests/1.2`).expect(503);
    assert.match(open.body.errors[0].message, /circuit breaker open/);
    const stale = await request(cache.url).get(`/v2/${REPO}/manifests/latest`).expect(200);
    assert.match(String(stale.headers['warning']), /circuit breaker open/, 'cached tags are still served');
    assert.equal(upstream.requests.length, before, 'the upstream was left alone');

    upstream.setFault(`${REPO}:latest`, undefined);
    upstream.setFault(`${REPO}:1.2`, undefined);
    clock += 30_000;
    await request(cache.url).get(`/v2/${REPO}/manifests/1.2`).expect(200);
    assert.equal(await metricValue(cache.url, 'pullthrough_upstream_breaker_open', { upstream: 'docker.io' }), 0);
  });

  it('offline: serves what is cached, 404s the rest at once, and never connects upstream', async () => {
    const root = await mkdtemp(path.join(tmpdir(), 'pullthrough-offline-'));
    try {
      await start({}, { storageRoot: root });
      await request(cache.url).get(`/v2/${REPO}/manifests/1.2`).expect(200);
      for (const blob of blobsOf(image)) await request(cache.url).get(`/v2/${REPO}/blobs/${blob.digest}`).expect(200);
      await cache.close({ keepStorage: true });

      const connectionsBefore = upstream.connections();
      await start({}, { storageRoot: root, offline: true });
      clock += 365 * 86_400_000;
      await request(cache.url).get(`/v2/${REPO}/manifests/1.2`).expect(200);
      await request(cache.url).get(`/v2/${REPO}/manifests/${image.digest}`).expect(200);
      for (const blob of blobsOf(image)) await request(cache.url).get(`/v2/${REPO}/blobs/${blob.digest}`).expect(200);
      const tag = await request(cache.url).get(`/v2/${REPO}/manifests/latest`).expect(404);
      assert.equal(tag.body.errors[0].code, 'MANIFEST_UNKNOWN');
      assert.match(tag.body.errors[0].message, /offline/);
      const blob = await request(cache.url).get(`/v2/${REPO}/blobs/sha256:${'1'.repeat(64)}`).expect(404);
      assert.equal(blob.body.errors[0].code, 'BLOB_UNKNOWN');
      await request(cache.url).head(`/v2/${REPO}/blobs/sha256:${'1'.repeat(64)}`).expect(404);
      const tags = await request(cache.url).get(`/v2/${REPO}/tags/list`).expect(200);
      assert.deepEqual(tags.body.tags, ['1.2']);
      assert.equal(upstream.connections(), connectionsBefore, 'zero upstream connections');
    } finally {
      await cache.close();
      await rm(root, { recursive: true, force: true });
    }
  });

  it('offline per upstream leaves the others online', async () => {
    const other = await startFakeUpstream();
    other.addImage('acme/tool', '1.0', image);
    try {
      cache = await startPullthrough({
        upstreams: [
          { host: 'docker.io', url: upstream.url, default: true, offline: true },
          { host: 'ghcr.io', url: other.url },
        ],
      });
      await request(cache.url).get(`/v2/${REPO}/manifests/1.2`).expect(404);
      await request(cache.url).get('/v2/ghcr.io/acme/tool/manifests/1.0').expect(200);
      assert.equal(upstream.requests.length, 0);
    } finally {
      await other.close();
    }
  });
});
