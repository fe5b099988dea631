import assert from 'node:assert/strict';
import { beforeEach, describe, it } from 'node:test';
import { createAccessPolicy, type AccessPolicy, type ConfiguredCredentials } from '../../../src/cache/access-policy.js';
import { makeCredentials, type Credentials } from '../../../src/config/credentials.js';
import { createSilentLogger } from '../../../src/logger.js';
import { OciError } from '../../../src/oci/errors.js';
import { createMetadataIndex, type MetadataIndex } from '../../../src/storage/metadata-index.js';
import { UpstreamError } from '../../../src/upstream/upstream-error.js';

const TTL = 300_000;
const LINK = { upstream: 'registry.example', repository: 'team/app' };
const OTHER = { upstream: 'registry.example', repository: 'team/other' };
const DIGEST = `sha256:${'a'.repeat(64)}`;
const alice = makeCredentials('alice', 'alice-secret');
const bob = makeCredentials('bob', 'bob-secret');

/** A call-counting stand-in for the upstream's HEAD: answers by who asks. */
function fakeProbe(answer: (credentials: Credentials | undefined) => 'ok' | 'auth' | 'missing' | 'down') {
  const calls: Array<string | undefined> = [];
  const probe = async (credentials: Credentials | undefined) => {
    calls.push(credentials?.username);
    const result = answer(credentials);
    if (result === 'auth') throw new UpstreamError('auth', LINK.upstream, 'refused', { status: 401 });
    if (result === 'missing') throw new UpstreamError('status', LINK.upstream, 'not found', { status: 404 });
    if (result === 'down') throw new UpstreamError('unreachable', LINK.upstream, 'unreachable: ECONNREFUSED');
    return {};
  };
  return { probe, calls };
}

const isDenied = (err: unknown) => err instanceof OciError && err.code === 'UNAUTHORIZED';

describe('access policy', () => {
  let clock: number;
  let index: MetadataIndex;
  let configured: ConfiguredCredentials | undefined;
  let policy: AccessPolicy;

  beforeEach(() => {
    clock = Date.UTC(2026, 0, 1);
    index = createMetadataIndex({ path: ':memory:' }, { now: () => clock });
    configured = undefined;
    policy = createAccessPolicy({ accessTtlMs: () => TTL, configured: () => configured }, { index, now: () => clock, logger: createSilentLogger() });
    index.putContent({ digest: DIGEST, size: 10, mediaType: null, kind: 'blob' }, LINK);
  });

  it('asks once for an anonymous requester, then takes the fresh proof without asking', async () => {
    const upstream = fakeProbe(() => 'ok');
    await policy.authorizeRepository(LINK, undefined, upstream.probe);
    await policy.authorizeRepository(LINK, undefined, upstream.probe);
    await policy.authorizeContent(LINK, DIGEST, undefined, upstream.probe);
    assert.deepEqual(upstream.calls, [undefined]);
  });

  it('asks again once a proof is older than accessTtl, and a refusal ends the anonymous proof', async () => {
    let isPrivate = false;
    const upstream = fakeProbe((c) => (isPrivate && !c ? 'auth' : 'ok'));
    await policy.authorizeRepository(LINK, undefined, upstream.probe);
    isPrivate = true;
    clock += TTL - 1;
    await policy.authorizeContent(LINK, DIGEST, undefined, upstream.probe);
    assert.equal(upstream.calls.length, 1, 'still fresh');
    clock += 2;
    await assert.rejects(policy.authorizeContent(LINK, DIGEST, undefined, upstream.probe), isDenied);
    assert.equal(index.publicProvenAt(LINK), undefined, 'no longer public, even for an outage later');
    await assert.rejects(policy.authorizeRepository(LINK, undefined, fakeProbe(() => 'down').probe), isDenied);
  });

  it('keeps credential proofs per identity: alice\'s yes is not bob\'s', async () => {
    const upstream = fakeProbe((c) => (c?.username === 'alice' ? 'ok' : 'auth'));
    await policy.authorizeRepository(LINK, alice, upstream.probe);
    await policy.authorizeRepository(LINK, alice, upstream.probe);
    await assert.rejects(policy.authorizeRepository(LINK, bob, upstream.probe), isDenied);
    await assert.rejects(policy.authorizeRepository(LINK, undefined, upstream.probe), isDenied);
    assert.deepEqual(upstream.calls, ['alice', 'bob', undefined]);
  });

  it('during an outage takes proofs of any age, but never for someone never proven', async () => {
    await policy.authorizeRepository(LINK, alice, fakeProbe(() => 'ok').probe);
    clock += 10 * TTL;
    const down = fakeProbe(() => 'down');
    await policy.authorizeRepository(LINK, alice, down.probe);
    await assert.rejects(policy.authorizeRepository(LINK, bob, down.probe), isDenied);
    await assert.rejects(policy.authorizeRepository(LINK, undefined, down.probe), isDenied);
    // Offline: nothing is asked; the same rules.
    const never = fakeProbe(() => 'ok');
    policy.authorizeRepositoryLocally(LINK, alice);
    assert.throws(() => policy.authorizeRepositoryLocally(LINK, bob), isDenied);
    assert.deepEqual(never.calls, []);
  });

  it('asks about a digest cached for another repository, even for a requester proven for this one', async () => {
    const upstream = fakeProbe(() => 'ok');
    await policy.authorizeRepository(OTHER, alice, upstream.probe);
    await policy.authorizeContent(OTHER, DIGEST, alice, upstream.probe);
    assert.deepEqual(upstream.calls, ['alice', 'alice'], 'the second call confirms the digest is in team/other');
    assert.ok(index.isLinked(OTHER, DIGEST));
    await assert.rejects(policy.authorizeContent(OTHER, `sha256:${'b'.repeat(64)}`, alice, fakeProbe(() => 'missing').probe), isDenied);
    assert.throws(() => policy.authorizeContentLocally({ upstream: 'x', repository: 'y' }, DIGEST, alice), isDenied);
  });

  it('makes a digest public only within its own upstream', async () => {
    await policy.authorizeRepository(LINK, undefined, fakeProbe(() => 'ok').probe);
    assert.ok(index.publicContentProvenAt(LINK.upstream, DIGEST) !== undefined);
    assert.equal(index.publicContentProvenAt('elsewhere.example', DIGEST), undefined);
  });

  it('lends configured credentials to anonymous requesters only for freshly proven public repositories, unless shared', async () => {
    configured = { credentials: makeCredentials('robot', 'x'), isShared: false };
    assert.equal(policy.upstreamCredentials(LINK, undefined), undefined);
    await policy.authorizeRepository(LINK, undefined, fakeProbe(() => 'ok').probe);
    assert.equal(policy.upstreamCredentials(LINK, undefined)?.username, 'robot');
    clock += TTL;
    assert.equal(policy.upstreamCredentials(LINK, undefined), undefined, 'stale: the next fetch is anonymous and proves it again');
    assert.equal(policy.upstreamCredentials(LINK, alice), alice);
    configured = { credentials: makeCredentials('robot', 'x'), isShared: true };
    const never = fakeProbe(() => 'auth');
    await policy.authorizeRepository(OTHER, undefined, never.probe);
    assert.deepEqual(never.calls, []);
  });

  it('links a digest to the repository asked through only on the upstream\'s own yes, not on an outage\'s', async () => {
    await policy.authorizeRepository(LINK, undefined, fakeProbe(() => 'ok').probe);
    clock += 2 * TTL;
    // Served on LINK's stale anonymous proof while the upstream is down (documented), but not remembered as OTHER's.
    await policy.authorizeContent(OTHER, DIGEST, undefined, fakeProbe(() => 'down').probe);
    assert.equal(index.isLinked(OTHER, DIGEST), false);
    await policy.authorizeRepository(OTHER, undefined, fakeProbe(() => 'ok').probe);
    await assert.rejects(policy.authorizeContent(OTHER, DIGEST, undefined, fakeProbe(() => 'missing').probe), isDenied);
    const confirmed = fakeProbe(() => 'ok');
    await policy.authorizeContent(OTHER, DIGEST, alice, confirmed.probe);
    assert.equal(index.isLinked(OTHER, DIGEST), true, 'a real yes links it');
  });

  it('shows a repository on the status page on a fresh proof only, of any age offline', async () => {
    await policy.authorizeRepository(LINK, undefined, fakeProbe(() => 'ok').probe);
    await policy.authorizeRepository(OTHER, alice, fakeProbe(() => 'ok').probe);
    assert.equal(policy.isVisible(LINK, undefined, false), true);
    assert.equal(policy.isVisible(OTHER, alice, false), true);
    assert.equal(policy.isVisible(OTHER, undefined, false), false);
    clock += TTL;
    assert.equal(policy.isVisible(LINK, undefined, false), false, 'it may have turned private since');
    assert.equal(policy.isVisible(OTHER, alice, false), false);
    assert.equal(policy.isVisible(LINK, undefined, true), true);
    assert.equal(policy.isVisible(OTHER, alice, true), true);
  });

  it('takes a proof from the future (the clock stepped back) as stale, and the next proof replaces it', async () => {
    const upstream = fakeProbe(() => 'ok');
    await policy.authorizeRepository(LINK, undefined, upstream.probe);
    clock -= 3_600_000;
    await policy.authorizeRepository(LINK, undefined, upstream.probe);
    await policy.authorizeRepository(LINK, undefined, upstream.probe);
    assert.equal(upstream.calls.length, 2, 'asked again once, then fresh at the new time');
  });

  it('repeats a refusal to the same requester for a few seconds without asking the upstream again', async () => {
    const refusing = fakeProbe(() => 'auth');
    for (let i = 0; i < 5; i++) await assert.rejects(policy.authorizeContent(LINK, DIGEST, undefined, refusing.probe, { isLinked: true }), isDenied);
    await assert.rejects(policy.authorizeRepository(LINK, bob, refusing.probe), isDenied);
    await assert.rejects(policy.authorizeRepository(LINK, bob, refusing.probe), isDenied);
    assert.deepEqual(refusing.calls, [undefined, 'bob'], 'one HEAD per requester, not one per request');
    clock += 5_000;
    await assert.rejects(policy.authorizeRepository(LINK, undefined, refusing.probe), isDenied);
    assert.equal(refusing.calls.length, 3, 'asked again once the memory is over');
    const missing = fakeProbe(() => 'missing');
    await assert.rejects(policy.authorizeContent(LINK, DIGEST, alice, missing.probe, { isLinked: false }), isDenied);
    await assert.rejects(policy.authorizeContent(LINK, DIGEST, alice, missing.probe, { isLinked: false }), isDenied);
    assert.equal(missing.calls.length, 2, 'a 404 is about one digest: not remembered for the repository');
  });
});
