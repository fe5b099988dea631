/**
 * Referrers (signatures, SBOMs) through the cache, against an upstream with the OCI 1.1
 * referrers API (the in-process fake, paged and filtering) and one without it (distribution
 * 2.8: the fallback tag `sha256-<hex>`). The conformance specs these cover are listed in
 * oci-conformance.test.ts.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import request from 'supertest';
import { startFakeUpstream, type FakeUpstream } from '../fakes/fake-upstream.js';
import { startDistribution, type Distribution } from '../helpers/distribution.js';
import { fallbackTagOf, makeArtifact, makeFallbackIndex, makeImage, OCI, type ImageManifest } from '../helpers/images.js';
import { startPullthrough, type RunningPullthrough } from '../helpers/pullthrough.js';

const SIG = 'application/vnd.dev.cosign.artifact.sig.v1+json';
const SBOM = 'application/spdx+json';
const MISSING = `sha256:${'0'.repeat(64)}`;

interface Index {
  mediaType: string;
  manifests: Array<{ digest: string; artifactType?: string; annotations?: Record<string, string> }>;
}

function digests(index: Index): string[] {
  return index.manifests.map((m) => m.digest).sort();
}

function parse(res: request.Response): Index {
  return JSON.parse(res.text) as Index;
}

function referrersRequests(upstream: FakeUpstream): number {
  return upstream.count('GET', /\/referrers\//);
}

describe('referrers from an upstream with the referrers API', () => {
  let upstream: FakeUpstream;
  let cache: RunningPullthrough;
  let image: ImageManifest;
  let sigA: ImageManifest;
  let sigB: ImageManifest;
  let sbom: ImageManifest;
  let orphan: ImageManifest;
  let clock = Date.UTC(2026, 0, 1);

  before(async () => {
    upstream = await startFakeUpstream({ referrers: { pageSize: 2, filters: true } });
    image = makeImage({ layerSizes: [10] });
    upstream.addImage('acme/app', '1.0', image);
    sigA = makeArtifact({ subject: image, artifactType: SIG, annotations: { 'org.example.who': 'a' } });
    sigB = makeArtifact({ subject: image, artifactType: SIG, annotations: { 'org.example.who': 'b' } });
    sbom = makeArtifact({ subject: image, artifactType: SBOM });
    // A referrer whose subject the upstream never had (conformance: "missing manifest").
    orphan = makeArtifact({ subject: makeImage({ layerSizes: [1] }), artifactType: SIG });
    for (const artifact of [sigA, sigB, sbom, orphan]) {
      upstream.addManifest('acme/app', artifact);
      for (const b of [artifact.config, ...artifact.layers]) upstream.addBlob(b);
    }
    cache = await startPullthrough({ upstreams: [{ host: 'ghcr.io', url: upstream.url, tagTtl: '5m' }], now: () => clock });
  });
  after(async () => {
    await cache.close();
    await upstream.close();
  });

  it('upstream with the API: every page in one index, by ns= cold and by path prefix warm, filtered with OCI-Filters-Applied', async () => {
    const cold = await request(cache.url).get(`/v2/acme/app/referrers/${image.digest}?ns=ghcr.io`).expect(200);
    assert.equal(cold.headers['content-type'], OCI.index);
    assert.equal(cold.headers['link'], undefined, 'one index, nothing to follow');
    assert.equal(cold.headers['oci-filters-applied'], undefined);
    const index = parse(cold);
    assert.equal(index.mediaType, OCI.index);
    assert.deepEqual(digests(index), [sigA.digest, sigB.digest, sbom.digest].sort());
    assert.equal(index.manifests.find((m) => m.digest === sigA.digest)?.annotations?.['org.example.who'], 'a');
    assert.equal(index.manifests.find((m) => m.digest === sbom.digest)?.artifactType, SBOM);
    assert.equal(referrersRequests(upstream), 2, 'both upstream pages were read');

    const warm = await request(cache.url).get(`/v2/ghcr.io/acme/app/referrers/${image.digest}`).expect(200);
    assert.deepEqual(digests(parse(warm)), digests(index));
    assert.equal(referrersRequests(upstream), 2, 'answered from the cache');

    const filtered = await request(cache.url).get(`/v2/ghcr.io/acme/app/referrers/${image.digest}?artifactType=${encodeURIComponent(SIG)}`).expect(200);
    assert.equal(filtered.headers['oci-filters-applied'], 'artifactType');
    assert.deepEqual(digests(parse(filtered)), [sigA.digest, sigB.digest].sort());
    const none = await request(cache.url).get(`/v2/acme/app/referrers/${image.digest}?ns=ghcr.io&artifactType=application%2Fnothing`).expect(200);
    assert.equal(none.headers['oci-filters-applied'], 'artifactType');
    assert.deepEqual(parse(none).manifests, []);

    const head = await request(cache.url).head(`/v2/acme/app/referrers/${image.digest}?ns=ghcr.io`).expect(200);
    assert.equal(head.headers['content-type'], OCI.index);
    assert.equal(head.headers['content-length'], String(Buffer.byteLength(warm.text)));
  });

  it('answers an empty index for a digest with no referrers, and 400 for a malformed one', async () => {
    const empty = await request(cache.url).get(`/v2/ghcr.io/acme/app/referrers/${MISSING}`).expect(200);
    assert.equal(empty.headers['content-type'], OCI.index);
    assert.deepEqual(parse(empty).manifests, []);
    const bad = await request(cache.url).get('/v2/ghcr.io/acme/app/referrers/sha256:nope').expect(400);
    assert.equal(bad.body.errors[0].code, 'DIGEST_INVALID');
  });

  it('referrers of a subject the upstream does not hold are still listed', async () => {
    const subject = (JSON.parse(orphan.bytes.toString()) as { subject: { digest: string } }).subject.digest;
    const res = await request(cache.url).get(`/v2/ghcr.io/acme/app/referrers/${subject}`).expect(200);
    assert.deepEqual(digests(parse(res)), [orphan.digest]);
  });

  it('the referrers themselves are ordinary content: manifests by digest, their blobs', async () => {
    const manifest = await request(cache.url).get(`/v2/ghcr.io/acme/app/manifests/${sigA.digest}`).set('accept', OCI.manifest).expect(200);
    assert.equal(manifest.headers['docker-content-digest'], sigA.digest);
    await request(cache.url).get(`/v2/ghcr.io/acme/app/blobs/${sigA.layers[0]!.digest}`).expect(200);
  });

  it('revalidates after tagTtl (a new signature appears), serves stale with a Warning while the upstream is down, and from the cache offline', async () => {
    const sigC = makeArtifact({ subject: image, artifactType: SIG, annotations: { 'org.example.who': 'c' } });
    upstream.addManifest('acme/app', sigC);
    const before = await request(cache.url).get(`/v2/ghcr.io/acme/app/referrers/${image.digest}`).expect(200);
    assert.equal(parse(before).manifests.length, 3, 'still fresh: not asked again');
    clock += 6 * 60_000;
    const after = await request(cache.url).get(`/v2/ghcr.io/acme/app/referrers/${image.digest}`).expect(200);
    assert.deepEqual(digests(parse(after)), [sigA.digest, sigB.digest, sbom.digest, sigC.digest].sort());

    upstream.setFault(`referrers:${image.digest}`, { type: 'status', status: 503 });
    clock += 6 * 60_000;
    try {
      const stale = await request(cache.url).get(`/v2/ghcr.io/acme/app/referrers/${image.digest}?artifactType=${encodeURIComponent(SBOM)}`).expect(200);
      assert.match(String(stale.headers['warning']), /^111 pullthrough/);
      assert.deepEqual(digests(parse(stale)), [sbom.digest]);
      const nothingCached = await request(cache.url).get(`/v2/ghcr.io/acme/app/referrers/${MISSING.replace(/0$/, '1')}`);
      assert.equal(nothingCached.status, 200, 'the fake answers other digests');
    } finally {
      upstream.setFault(`referrers:${image.digest}`, undefined);
    }

    const offline = await startPullthrough({ upstreams: [{ host: 'ghcr.io', url: 'http://127.0.0.1:1', offline: true }], storageRoot: cache.storageRoot });
    try {
      const res = await request(offline.url).get(`/v2/acme/app/referrers/${image.digest}?ns=ghcr.io`).expect(200);
      assert.equal(parse(res).manifests.length, 4);
      const unknown = await request(offline.url).get(`/v2/ghcr.io/acme/app/referrers/${MISSING.replace(/0$/, '2')}`).expect(200);
      assert.deepEqual(parse(unknown).manifests, []);
      assert.match(String(unknown.headers['warning']), /offline/);
    } finally {
      await offline.close({ keepStorage: true });
    }
  });

  it('keeps the answer out of tag listings', async () => {
    const tags = await request(cache.url).get('/v2/ghcr.io/acme/app/tags/list').expect(200);
    assert.deepEqual(tags.body.tags, ['1.0']);
  });
});

describe('referrers of a private repository', () => {
  it('are served only to requesters the upstream accepts', async () => {
    const upstream = await startFakeUpstream({ referrers: {}, privateRepositories: ['team/secret'], users: { alice: 'pw' } });
    const image = makeImage({ layerSizes: [10] });
    upstream.addImage('team/secret', '1.0', image);
    const sig = makeArtifact({ subject: image, artifactType: SIG });
    upstream.addManifest('team/secret', sig);
    const cache = await startPullthrough({ upstreams: [{ host: 'ghcr.io', url: upstream.url, tagTtl: '5m' }] });
    const alice = `Basic ${Buffer.from('alice:pw').toString('base64')}`;
    try {
      await request(cache.url).get(`/v2/ghcr.io/team/secret/referrers/${image.digest}`).expect(401);
      const ok = await request(cache.url).get(`/v2/ghcr.io/team/secret/referrers/${image.digest}`).set('authorization', alice).expect(200);
      assert.deepEqual(digests(parse(ok)), [sig.digest]);
      // Cached now, and still not for anyone else.
      await request(cache.url).get(`/v2/ghcr.io/team/secret/referrers/${image.digest}`).expect(401);
      await request(cache.url).get(`/v2/ghcr.io/team/secret/referrers/${image.digest}`).set('authorization', `Basic ${Buffer.from('alice:wrong').toString('base64')}`).expect(401);
    } finally {
      await cache.close();
      await upstream.close();
    }
  });
});

describe('referrers from distribution 2.8 (no referrers API: the fallback tag)', { timeout: 120_000 }, () => {
  let registry: Distribution;
  let cache: RunningPullthrough;
  let host: string;
  let image: ImageManifest;
  let sig: ImageManifest;
  let sbom: ImageManifest;

  before(async () => {
    registry = await startDistribution({ accessLog: true });
    host = `127.0.0.1:${registry.port}`;
    image = makeImage({ layerSizes: [10] });
    await registry.push('acme/app', '1.0', image);
    sig = makeArtifact({ subject: image, artifactType: SIG, annotations: { 'org.example.who': 'ci' } });
    sbom = makeArtifact({ subject: image, artifactType: SBOM });
    // What oras and notation do without the API: push the artifacts, then the index under sha256-<hex>.
    await registry.push('acme/app', fallbackTagOf(image.digest), makeFallbackIndex([sig, sbom]));
    // cosign's older scheme: an ordinary tag sha256-<hex>.sig.
    await registry.push('acme/app', `${fallbackTagOf(image.digest)}.sig`, sig);
    cache = await startPullthrough({ upstreams: [{ host, url: registry.url, tagTtl: '5m' }] });
  });
  after(async () => {
    await cache?.close();
    await registry?.stop();
  });

  it('answers the referrers API from the fallback tag, filtered by pullthrough', async () => {
    const res = await request(cache.url).get(`/v2/acme/app/referrers/${image.digest}?ns=${encodeURIComponent(host)}`).expect(200);
    assert.equal(res.headers['content-type'], OCI.index);
    const index = parse(res);
    assert.deepEqual(digests(index), [sig.digest, sbom.digest].sort());
    assert.equal(index.manifests.find((m) => m.digest === sig.digest)?.annotations?.['org.example.who'], 'ci');

    const filtered = await request(cache.url).get(`/v2/${host}/acme/app/referrers/${image.digest}?artifactType=${encodeURIComponent(SIG)}`).expect(200);
    assert.equal(filtered.headers['oci-filters-applied'], 'artifactType');
    assert.deepEqual(digests(parse(filtered)), [sig.digest]);
    const asked = registry.served().filter((r) => r.path.includes('/referrers/')).length;
    assert.equal(asked, 1, 'the missing API is remembered, and the answer cached');

    const none = await request(cache.url).get(`/v2/${host}/acme/app/referrers/${MISSING}`).expect(200);
    assert.deepEqual(parse(none).manifests, []);
  });

  it('serves the fallback tag and the legacy cosign tag as ordinary tags, and the artifacts as content', async () => {
    const fallback = await request(cache.url).get(`/v2/${host}/acme/app/manifests/${fallbackTagOf(image.digest)}`).set('accept', OCI.index).expect(200);
    assert.equal(fallback.headers['content-type'], OCI.index);
    const legacy = await request(cache.url).get(`/v2/${host}/acme/app/manifests/${fallbackTagOf(image.digest)}.sig`).set('accept', OCI.manifest).expect(200);
    assert.equal(legacy.headers['docker-content-digest'], sig.digest);
    await request(cache.url).get(`/v2/${host}/acme/app/blobs/${sig.layers[0]!.digest}`).expect(200);
    const tags = await request(cache.url).get(`/v2/${host}/acme/app/tags/list`).expect(200);
    assert.deepEqual(tags.body.tags, ['1.0', fallbackTagOf(image.digest), `${fallbackTagOf(image.digest)}.sig`].sort());
  });

  it('serves cached referrers with the upstream stopped (stale, with a Warning once tagTtl passed)', async () => {
    const isolated = await startPullthrough({ upstreams: [{ host, url: registry.url, tagTtl: '0s' }] });
    try {
      await request(isolated.url).get(`/v2/${host}/acme/app/referrers/${image.digest}`).expect(200);
      await registry.stop();
      const stale = await request(isolated.url).get(`/v2/${host}/acme/app/referrers/${image.digest}`).expect(200);
      assert.deepEqual(digests(parse(stale)), [sig.digest, sbom.digest].sort());
      assert.match(String(stale.headers['warning']), /^111 pullthrough/);
    } finally {
      await isolated.close();
    }
  });
});
