import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { isUpstreamOutage } from '../../../src/cache/tag-freshness.js';
import { makeCredentials } from '../../../src/config/credentials.js';
import { OciError, type OciErrorCode } from '../../../src/oci/errors.js';
import { UpstreamError } from '../../../src/upstream/upstream-error.js';
import { expectedCounts, type CallCounts } from '../../fakes/counting-upstream.js';
import { createRegistryHarness, type RegistryHarness } from '../../fakes/registry-harness.js';
import { makeImage, makeRawBlob } from '../../helpers/images.js';

/*
 * The registry as one unit over an upstream that counts every call, in the style of
 * distribution's registry/proxy tests: each scenario asserts the answer (bytes, digest, how it
 * was answered) and exactly what it cost upstream.
 */

const TAG_TTL = 60_000;
const ACCESS_TTL = 300_000;
const NOT_FOUND_TTL = 10_000;
/** Gated tests wait on the registry before releasing the body: a regression there must fail, not hang (a bound, not a speed check). */
const HANG_GUARD = { timeout: 120_000 };
const NAME = 'library/app';
const PRIVATE = 'team/private';
const alice = makeCredentials('alice', 'alice-secret');
const bob = makeCredentials('bob', 'bob-secret');
const aliceWrong = makeCredentials('alice', 'guessed');

const ociError = (code: OciErrorCode) => (err: unknown) => err instanceof OciError && err.code === code;
/** What a client should get when the upstream is down: the upstream's outage (503 at the HTTP layer), or already its OCI form. */
const isOutageAnswer = (err: unknown) => isUpstreamOutage(err) || (err instanceof OciError && err.code === 'UNAVAILABLE');
/** The upstream's own refusal passed on (401 at the HTTP layer), or already its OCI form. */
const isUpstreamRefusal = (err: unknown) => (err instanceof UpstreamError && err.kind === 'auth') || ociError('UNAUTHORIZED')(err);

describe('pull-through registry: answers and upstream calls', () => {
  let h: RegistryHarness;
  /** Upstream calls since the last check are exactly these (every other method: 0); the count starts again. */
  const assertCalls = (expected: Partial<CallCounts>, message?: string) => {
    assert.deepEqual(h.upstream.counts(), expectedCounts(expected), message);
    h.upstream.reset();
  };

  beforeEach(async () => {
    h = await createRegistryHarness({ tagTtlMs: TAG_TTL, accessTtlMs: ACCESS_TTL, notFoundTtlMs: NOT_FOUND_TTL });
  });
  afterEach(async () => {
    await h.close();
  });

  describe('blobs', () => {
    it('a miss fetches once; hits then cost nothing while the access proof is fresh', async () => {
      const layer = makeRawBlob(100_000);
      h.upstream.addBlob(NAME, layer);

      const miss = await h.getBlob(NAME, layer.digest);
      assert.equal(miss.result, 'miss');
      assert.equal(miss.source, 'upstream');
      assert.equal(miss.digest, layer.digest);
      assert.equal(miss.size, layer.bytes.length);
      assert.ok((await h.read(miss)).equals(layer.bytes));
      await h.settled();
      assertCalls({ getBlob: 1 });
      assert.equal(await h.isCached(layer.digest), true);

      for (const elapsed of [0, ACCESS_TTL - 1]) {
        h.clock.advance(elapsed);
        const hit = await h.getBlob(NAME, layer.digest);
        assert.equal(hit.result, 'hit');
        assert.equal(hit.source, 'cache');
        assert.equal(hit.size, layer.bytes.length);
        assert.ok((await h.read(hit)).equals(layer.bytes));
      }
      assertCalls({}, 'served from the cache alone');
    });

    it('a HEAD of an uncached blob asks the upstream with a HEAD and caches nothing', async () => {
      const layer = makeRawBlob(1000);
      h.upstream.addBlob(NAME, layer);
      const head = await h.getBlob(NAME, layer.digest, { method: 'HEAD' });
      assert.equal(head.result, 'miss');
      assert.equal(head.size, layer.bytes.length);
      assert.equal(head.send, undefined);
      assertCalls({ headBlob: 1 });
      assert.equal(await h.isCached(layer.digest), false);
    });

    it('10 concurrent GETs of an uncached blob make one upstream GET: one miss, nine joined, all full bytes', HANG_GUARD, async () => {
      const image = makeImage({ layerSizes: [200_000] });
      const layer = image.layers[0]!;
      h.upstream.addImage(NAME, '1.0', image);
      // A pull starts with the manifest: that answer is the anonymous proof the blob requests lean on.
      await h.getManifest(NAME, '1.0');
      assertCalls({ getManifest: 1 });

      const gate = h.upstream.gateBlob(layer.digest, 1000);
      const results = await Promise.all(Array.from({ length: 10 }, () => h.getBlob(NAME, layer.digest)));
      await gate.opened;
      const bodies = Promise.all(results.map((r) => h.read(r)));
      gate.release();
      for (const bytes of await bodies) assert.ok(bytes.equals(layer.bytes));
      await h.settled();

      assert.deepEqual(results.map((r) => r.result).sort(), ['miss', ...Array<string>(9).fill('joined')].sort());
      assert.ok(results.every((r) => r.source === 'upstream' && r.digest === layer.digest));
      assertCalls({ getBlob: 1 });
      assert.equal(await h.isCached(layer.digest), true);
    });

    it('joiners of a cold anonymous fill prove their own access: one shared HEAD, still one GET', HANG_GUARD, async () => {
      const layer = makeRawBlob(50_000);
      h.upstream.addBlob(NAME, layer);
      const gate = h.upstream.gateBlob(layer.digest, 1000);
      const results = await Promise.all(Array.from({ length: 10 }, () => h.getBlob(NAME, layer.digest)));
      const bodies = Promise.all(results.map((r) => h.read(r)));
      gate.release();
      for (const bytes of await bodies) assert.ok(bytes.equals(layer.bytes));
      await h.settled();
      assert.equal(results.filter((r) => r.result === 'miss').length, 1);
      assert.equal(results.filter((r) => r.result === 'joined').length, 9);
      // Nothing had proven the repository public when they arrived: the starter's fill is no proof for them yet.
      assertCalls({ getBlob: 1, headBlob: 1 });
    });

    it('a body that does not match its digest fails the client, caches nothing, and the next request fetches again', async () => {
      const layer = makeRawBlob(100_000);
      h.upstream.addBlob(NAME, layer);
      h.upstream.corruptBlob(layer.digest);

      const { bytes, error } = await h.getBlob(NAME, layer.digest).then((r) => h.readSettled(r), (err: unknown) => ({ bytes: Buffer.alloc(0), error: err }));
      assert.ok(error !== undefined, 'the client is told the download failed');
      assert.ok(bytes.length < layer.bytes.length, 'a wrong body never looks complete');
      await h.settled();
      assertCalls({ getBlob: 1 });
      assert.equal(await h.isCached(layer.digest), false);
      assert.equal(await h.tempFiles(), 0, 'the temp file is gone');

      h.upstream.corruptBlob(layer.digest, false);
      const again = await h.getBlob(NAME, layer.digest);
      assert.equal(again.result, 'miss');
      assert.ok((await h.read(again)).equals(layer.bytes));
      await h.settled();
      assertCalls({ getBlob: 1 }, 'nothing was remembered from the bad body');
      assert.equal(await h.isCached(layer.digest), true);
    });
  });

  describe('manifests', () => {
    it('by tag: miss, then hits inside tagTtl for free, then one HEAD revalidates', async () => {
      const image = makeImage({ layerSizes: [1000] });
      h.upstream.addImage(NAME, '1.0', image);

      const miss = await h.getManifest(NAME, '1.0');
      assert.equal(miss.result, 'miss');
      assert.equal(miss.source, 'upstream');
      assert.equal(miss.digest, image.digest);
      assert.equal(miss.mediaType, image.mediaType);
      assert.ok(miss.bytes?.equals(image.bytes));
      assertCalls({ getManifest: 1 });

      h.clock.advance(TAG_TTL - 1);
      const hit = await h.getManifest(NAME, '1.0');
      assert.equal(hit.result, 'hit');
      assert.equal(hit.source, 'cache');
      assert.ok(hit.bytes?.equals(image.bytes));
      assertCalls({});

      h.clock.advance(1);
      const revalidated = await h.getManifest(NAME, '1.0');
      assert.equal(revalidated.result, 'revalidated');
      assert.equal(revalidated.source, 'cache');
      assert.ok(revalidated.bytes?.equals(image.bytes));
      assertCalls({ headManifest: 1 }, 'a HEAD, not a GET');

      assert.equal((await h.getManifest(NAME, '1.0')).result, 'hit', 'fresh again from the revalidation');
      assertCalls({});
    });

    it('by tag: a tag moved upstream is fetched again after tagTtl (HEAD, then GET)', async () => {
      const v1 = makeImage({ layerSizes: [1000] });
      const v2 = makeImage({ layerSizes: [1000] });
      h.upstream.addImage(NAME, 'latest', v1);
      await h.getManifest(NAME, 'latest');
      h.upstream.addImage(NAME, 'latest', v2);
      h.upstream.reset();

      assert.equal((await h.getManifest(NAME, 'latest')).digest, v1.digest, 'inside tagTtl the cached tag is the answer');
      h.clock.advance(TAG_TTL);
      const moved = await h.getManifest(NAME, 'latest');
      assert.equal(moved.digest, v2.digest);
      assert.equal(moved.result, 'miss');
      assert.ok(moved.bytes?.equals(v2.bytes));
      assertCalls({ headManifest: 1, getManifest: 1 });
    });

    it('by digest: never revalidated, no upstream call on a hit', async () => {
      const image = makeImage({ layerSizes: [1000] });
      h.upstream.addImage(NAME, '1.0', image);
      const miss = await h.getManifest(NAME, image.digest);
      assert.equal(miss.result, 'miss');
      assert.ok(miss.bytes?.equals(image.bytes));
      assertCalls({ getManifest: 1 });

      for (let i = 0; i < 4; i++) {
        h.clock.advance(TAG_TTL);
        const hit = await h.getManifest(NAME, image.digest);
        assert.equal(hit.result, 'hit');
        assert.equal(hit.source, 'cache');
        assert.ok(hit.bytes?.equals(image.bytes));
      }
      assertCalls({}, 'four tag lifetimes later, still no question upstream');
    });
  });

  describe('manifests: sharing and refusing', () => {
    it('10 concurrent GETs of an uncached tag make one upstream GET: one miss, nine joined', async () => {
      const image = makeImage({ layerSizes: [1000] });
      h.upstream.addImage(NAME, '1.0', image);
      const results = await Promise.all(Array.from({ length: 10 }, () => h.getManifest(NAME, '1.0')));
      assert.deepEqual(results.map((r) => r.result).sort(), ['miss', ...Array<string>(9).fill('joined')].sort());
      assert.ok(results.every((r) => r.digest === image.digest && r.bytes?.equals(image.bytes)));
      assertCalls({ getManifest: 1 });
    });

    it('an unknown tag is remembered for notFoundTtl, then asked again', async () => {
      h.upstream.addImage(NAME, '1.0', makeImage({ layerSizes: [1000] }));
      await assert.rejects(h.getManifest(NAME, 'nope'), ociError('MANIFEST_UNKNOWN'));
      assertCalls({ getManifest: 1 });
      await assert.rejects(h.getManifest(NAME, 'nope'), ociError('MANIFEST_UNKNOWN'));
      assertCalls({}, 'the 404 is remembered');
      h.clock.advance(NOT_FOUND_TTL);
      await assert.rejects(h.getManifest(NAME, 'nope'), ociError('MANIFEST_UNKNOWN'));
      assertCalls({ getManifest: 1 });
    });

    it('a manifest that does not match the digest asked for is refused, cached under neither digest, and fetched again next time', async () => {
      const image = makeImage({ layerSizes: [1000] });
      const asked = makeImage({ layerSizes: [1000] }).digest;
      // The upstream answers `asked` with another manifest's bytes.
      h.upstream.addManifest(NAME, { ...image, digest: asked });
      for (let i = 0; i < 2; i++) {
        await assert.rejects(h.getManifest(NAME, asked), ociError('UNAVAILABLE'), 'an upstream that sends the wrong bytes is a 503, as any broken upstream');
        assertCalls({ getManifest: 1 });
      }
      assert.equal(await h.isCached(asked), false);
      assert.equal(await h.isCached(image.digest), false);
    });
  });

  describe('upstream outage', () => {
    it('serves a cached tag stale, with a warning, when the revalidating HEAD fails', async () => {
      const image = makeImage({ layerSizes: [1000] });
      h.upstream.addImage(NAME, '1.0', image);
      await h.getManifest(NAME, '1.0');
      h.upstream.reset();
      h.upstream.setDown('unreachable');

      h.clock.advance(TAG_TTL);
      const stale = await h.getManifest(NAME, '1.0');
      assert.equal(stale.result, 'stale');
      assert.equal(stale.source, 'cache');
      assert.ok(stale.bytes?.equals(image.bytes));
      assert.match(h.staleReason(stale) ?? '', /ECONNREFUSED/, 'the reason names the failure');
      assertCalls({ headManifest: 1 });

      // Past accessTtl too: the one HEAD is both the revalidation and the access proof, and the old anonymous proof stands in.
      h.clock.advance(ACCESS_TTL);
      h.upstream.setDown(503);
      const older = await h.getManifest(NAME, '1.0');
      assert.equal(older.result, 'stale');
      assert.match(h.staleReason(older) ?? '', /503/);
      assertCalls({ headManifest: 1 });
    });

    it('serves a cached blob; past accessTtl its failed re-proof HEAD does not stop it', async () => {
      const layer = makeRawBlob(10_000);
      h.upstream.addBlob(NAME, layer);
      await h.read(await h.getBlob(NAME, layer.digest));
      await h.settled();
      h.upstream.reset();
      h.upstream.setDown('timeout');

      const hit = await h.getBlob(NAME, layer.digest);
      assert.equal(hit.result, 'hit');
      assert.ok((await h.read(hit)).equals(layer.bytes));
      assertCalls({});

      h.clock.advance(ACCESS_TTL);
      const later = await h.getBlob(NAME, layer.digest);
      assert.equal(later.result, 'hit');
      assert.ok((await h.read(later)).equals(layer.bytes));
      assertCalls({ headBlob: 1 });
    });

    it('an uncached blob or tag is an outage error, and nothing is cached', async () => {
      const image = makeImage({ layerSizes: [1000] });
      const layer = image.layers[0]!;
      h.upstream.addImage(NAME, '1.0', image);
      h.upstream.setDown('unreachable');

      await assert.rejects(h.getBlob(NAME, layer.digest).then((r) => h.read(r)), isOutageAnswer);
      await h.settled();
      assertCalls({ getBlob: 1 });
      assert.equal(await h.isCached(layer.digest), false);

      await assert.rejects(h.getManifest(NAME, '1.0'), isOutageAnswer);
      assertCalls({ getManifest: 1 });

      h.upstream.setDown(false);
      assert.equal((await h.getManifest(NAME, '1.0')).result, 'miss', 'no failure is remembered as an answer');
      assertCalls({ getManifest: 1 });
    });
  });

  describe('offline', () => {
    it('serves what is cached with no upstream call, however old; an uncached name is unknown', async () => {
      const image = makeImage({ layerSizes: [1000] });
      const layer = image.layers[0]!;
      const other = makeImage({ layerSizes: [1000] });
      h.upstream.addImage(NAME, '1.0', image);
      h.upstream.addImage(NAME, '2.0', other);
      await h.getManifest(NAME, '1.0');
      await h.read(await h.getBlob(NAME, layer.digest));
      await h.settled();
      h.upstream.reset();

      h.setOffline(true);
      h.clock.advance(10 * ACCESS_TTL);
      const tag = await h.getManifest(NAME, '1.0');
      assert.equal(tag.result, 'hit');
      assert.equal(h.staleReason(tag), undefined, 'offline is no failure: the cache is the answer');
      assert.ok(tag.bytes?.equals(image.bytes));
      const byDigest = await h.getManifest(NAME, image.digest);
      assert.equal(byDigest.result, 'hit');
      const blob = await h.getBlob(NAME, layer.digest);
      assert.equal(blob.result, 'hit');
      assert.ok((await h.read(blob)).equals(layer.bytes));

      await assert.rejects(h.getBlob(NAME, other.layers[0]!.digest), ociError('BLOB_UNKNOWN'));
      await assert.rejects(h.getManifest(NAME, '2.0'), ociError('MANIFEST_UNKNOWN'));
      await assert.rejects(h.getManifest(NAME, other.digest), ociError('MANIFEST_UNKNOWN'));
      assertCalls({}, 'offline: the upstream is never contacted');
    });
  });

  describe('private repositories', () => {
    it('fills with alice\'s credentials and serves her from the cache; anonymous and wrong credentials are refused by the upstream\'s word', async () => {
      const image = makeImage({ layerSizes: [5000] });
      const layer = image.layers[0]!;
      h.upstream.addImage(PRIVATE, '1.0', image);
      h.upstream.setPrivate(PRIVATE, { alice: 'alice-secret' });

      await assert.rejects(h.getManifest(PRIVATE, '1.0'), isUpstreamRefusal);
      assertCalls({ getManifest: 1 }, 'an anonymous miss is the upstream\'s refusal');

      const manifest = await h.getManifest(PRIVATE, '1.0', { credentials: alice });
      assert.equal(manifest.result, 'miss');
      const blob = await h.getBlob(PRIVATE, layer.digest, { credentials: alice });
      assert.equal(blob.result, 'miss');
      assert.ok((await h.read(blob)).equals(layer.bytes));
      await h.settled();
      assert.deepEqual(
        h.upstream.calls.map((c) => [c.method, c.username]),
        [
          ['getManifest', 'alice'],
          ['getBlob', 'alice'],
        ],
      );
      assertCalls({ getManifest: 1, getBlob: 1 });

      assert.equal((await h.getManifest(PRIVATE, '1.0', { credentials: alice })).result, 'hit');
      const again = await h.getBlob(PRIVATE, layer.digest, { credentials: alice });
      assert.equal(again.result, 'hit');
      assert.ok((await h.read(again)).equals(layer.bytes));
      assertCalls({}, 'alice\'s proof is fresh');

      // The bytes are on disk; an anonymous request still gets nothing of them (there is no sender to read).
      await assert.rejects(h.getBlob(PRIVATE, layer.digest), ociError('UNAUTHORIZED'));
      assertCalls({ headBlob: 1 });
      // Refused moments ago: the same requester's next requests are refused here, not relayed.
      await assert.rejects(h.getManifest(PRIVATE, '1.0'), ociError('UNAUTHORIZED'));
      await assert.rejects(h.getManifest(PRIVATE, image.digest), ociError('UNAUTHORIZED'));
      assertCalls({}, 'the refusal is remembered for a few seconds');

      for (const wrong of [bob, aliceWrong]) {
        await assert.rejects(h.getBlob(PRIVATE, layer.digest, { credentials: wrong }), ociError('UNAUTHORIZED'));
        await assert.rejects(h.getManifest(PRIVATE, '1.0', { credentials: wrong }), ociError('UNAUTHORIZED'));
        assert.deepEqual(
          h.upstream.calls.map((c) => [c.method, c.username]),
          [['headBlob', wrong.username]],
          'the refusal is the upstream\'s answer to these very credentials, repeated for a few seconds',
        );
        assertCalls({ headBlob: 1 });
      }
    });
  });

  describe('tag lists', () => {
    it('are read once for a while, and stand in from the cache when the upstream is down or offline', async () => {
      const image = makeImage({ layerSizes: [1000] });
      h.upstream.addImage(NAME, '1.0', image);
      h.upstream.addImage(NAME, '2.0', image);
      await h.getManifest(NAME, '1.0');
      assertCalls({ getManifest: 1 });

      const listed = await h.listTags(NAME);
      assert.deepEqual(listed.items, ['1.0', '2.0']);
      assert.equal(listed.staleReason, undefined);
      assert.deepEqual((await h.listTags(NAME, { n: 1 })).items, ['1.0']);
      assertCalls({ listTagsPage: 1 }, 'the second page comes from the list just read');

      h.clock.advance(ACCESS_TTL);
      h.upstream.setDown('unreachable');
      const stale = await h.listTags(NAME);
      assert.deepEqual(stale.items, ['1.0'], 'only the tags this cache holds');
      assert.match(stale.staleReason ?? '', /ECONNREFUSED/);
      assertCalls({ listTagsPage: 1 });

      h.setOffline(true);
      const offline = await h.listTags(NAME);
      assert.deepEqual(offline.items, ['1.0']);
      assert.match(offline.staleReason ?? '', /offline/);
      assertCalls({});
    });
  });

  describe('bounds', () => {
    it('refuses a fill past maxConcurrentFills with a retryable error, asking nothing upstream', HANG_GUARD, async () => {
      await h.close();
      h = await createRegistryHarness({ tagTtlMs: TAG_TTL, accessTtlMs: ACCESS_TTL, maxConcurrentFills: 1 });
      const first = makeRawBlob(10_000);
      const second = makeRawBlob(10_000);
      h.upstream.addBlob(NAME, first);
      h.upstream.addBlob(NAME, second);
      const gate = h.upstream.gateBlob(first.digest);
      const running = await h.getBlob(NAME, first.digest);
      await assert.rejects(h.getBlob(NAME, second.digest), (err: unknown) => ociError('UNAVAILABLE')(err) && Number((err as OciError).headers['retry-after']) > 0);
      assertCalls({ getBlob: 1 });
      const body = h.read(running);
      gate.release();
      assert.ok((await body).equals(first.bytes));
      await h.settled();
      assert.equal((await h.getBlob(NAME, second.digest)).result, 'miss', 'room again once the fill ended');
      assertCalls({ getBlob: 1 });
    });
  });

  describe('configured credentials', () => {
    it('fetch for anonymous requesters only while the repository is freshly proven public', async () => {
      await h.close();
      h = await createRegistryHarness({ tagTtlMs: TAG_TTL, accessTtlMs: ACCESS_TTL, configured: { credentials: makeCredentials('robot', 'robot-secret'), isShared: false } });
      const blobs = [makeRawBlob(1000), makeRawBlob(1000), makeRawBlob(1000)];
      for (const blob of blobs) h.upstream.addBlob(NAME, blob);
      const fetchedBy = async (digest: string) => {
        await h.read(await h.getBlob(NAME, digest));
        await h.settled();
        const [call] = h.upstream.calls;
        assertCalls({ getBlob: 1 });
        return call?.username;
      };
      assert.equal(await fetchedBy(blobs[0]!.digest), undefined, 'unproven: anonymous, so private bytes cannot come back');
      assert.equal(await fetchedBy(blobs[1]!.digest), 'robot', 'proven public just now: the robot\'s better rate limit');
      h.clock.advance(ACCESS_TTL);
      assert.equal(await fetchedBy(blobs[2]!.digest), undefined, 'the proof is stale: anonymous again, which proves it anew');
    });
  });

  describe('access proofs', () => {
    it('past accessTtl an anonymous hit of public content costs exactly one HEAD, no GET', async () => {
      const image = makeImage({ layerSizes: [1000] });
      const layer = image.layers[0]!;
      h.upstream.addImage(NAME, '1.0', image);
      await h.getManifest(NAME, '1.0');
      await h.read(await h.getBlob(NAME, layer.digest));
      await h.settled();
      h.upstream.reset();

      h.clock.advance(ACCESS_TTL);
      const blob = await h.getBlob(NAME, layer.digest);
      assert.equal(blob.result, 'hit');
      assert.ok((await h.read(blob)).equals(layer.bytes));
      assertCalls({ headBlob: 1 });
      assert.equal((await h.getBlob(NAME, layer.digest)).result, 'hit');
      assertCalls({}, 'proven again: fresh for another accessTtl');

      h.clock.advance(ACCESS_TTL);
      const byDigest = await h.getManifest(NAME, image.digest);
      assert.equal(byDigest.result, 'hit', 'a re-proof is no revalidation: digests never change');
      assertCalls({ headManifest: 1 });

      // A tag past both lifetimes: one HEAD is the access proof and the revalidation.
      h.clock.advance(ACCESS_TTL);
      assert.equal((await h.getManifest(NAME, '1.0')).result, 'revalidated');
      assertCalls({ headManifest: 1 });
    });

    it('a public repository that turned private stops serving anonymous requests at the next proof', async () => {
      const layer = makeRawBlob(1000);
      h.upstream.addBlob(NAME, layer);
      await h.read(await h.getBlob(NAME, layer.digest));
      await h.settled();
      h.upstream.setPrivate(NAME, { alice: 'alice-secret' });
      h.upstream.reset();

      assert.equal((await h.getBlob(NAME, layer.digest)).result, 'hit', 'inside accessTtl the proof holds');
      h.clock.advance(ACCESS_TTL);
      await assert.rejects(h.getBlob(NAME, layer.digest), ociError('UNAUTHORIZED'));
      assertCalls({ headBlob: 1 });
      const forAlice = await h.getBlob(NAME, layer.digest, { credentials: alice });
      assert.equal(forAlice.result, 'hit');
      assertCalls({ headBlob: 1 }, 'alice proves herself once; the bytes come from the cache');
    });
  });
});
