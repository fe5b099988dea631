import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import { rendezvousOrder } from '../../../src/upstream/cluster-members.js';
import { isSignedPeerRequest, signPeerRequest } from '../../../src/upstream/peer-signature.js';

const members = (count: number) => Array.from({ length: count }, (_, i) => ({ url: `http://10.0.0.${i + 1}:5000` }));
const digests = Array.from({ length: 2000 }, (_, i) => `sha256:${createHash('sha256').update(String(i)).digest('hex')}`);
const ownerOf = (list: ReadonlyArray<{ url: string }>, key: string) => rendezvousOrder(list, key)[0]!.url;

describe('rendezvous placement', () => {
  it('spreads digests evenly over the members', () => {
    const counts = new Map<string, number>();
    for (const digest of digests) counts.set(ownerOf(members(4), digest), (counts.get(ownerOf(members(4), digest)) ?? 0) + 1);
    assert.equal(counts.size, 4);
    for (const count of counts.values()) assert.ok(count > 400 && count < 600, `each member owns about a quarter (${count} of 2000)`);
  });

  it('moves only the joining member’s share when one joins, and only the leaving member’s when one leaves', () => {
    const four = members(4);
    const five = members(5);
    const joined = five[4]!.url;
    for (const digest of digests) {
      const before = ownerOf(four, digest);
      const after = ownerOf(five, digest);
      assert.ok(after === before || after === joined, 'a digest moves only to the new member');
    }
    const leaving = four[1]!.url;
    const three = four.filter((m) => m.url !== leaving);
    for (const digest of digests) {
      const before = ownerOf(four, digest);
      if (before !== leaving) assert.equal(ownerOf(three, digest), before, 'digests of the members that stay do not move');
      else assert.equal(ownerOf(three, digest), rendezvousOrder(four, digest)[1]!.url, 'the leaver’s digests go to the next in its order');
    }
  });

  it('orders the same for every member: placement needs no coordination', () => {
    const list = members(6);
    for (const digest of digests.slice(0, 50)) assert.deepEqual(rendezvousOrder(list, digest), rendezvousOrder([...list].reverse(), digest));
  });
});

describe('peer request signatures', () => {
  const secret = 'a-cluster-secret-of-some-length';
  const path = '/_pullthrough/cluster/v1/blobs/sha256:abc?upstream=docker.io&repository=library%2Fapp';
  const now = 1_800_000_000_000;

  it('accepts its own signature within a minute, and nothing else', () => {
    const header = signPeerRequest(secret, 'GET', path, now);
    assert.equal(isSignedPeerRequest(secret, header, 'GET', path, now + 30_000), true);
    assert.equal(isSignedPeerRequest(secret, header, 'GET', path, now + 120_000), false, 'a replay after the window');
    assert.equal(isSignedPeerRequest(secret, header, 'HEAD', path, now), false, 'another method');
    assert.equal(isSignedPeerRequest(secret, header, 'GET', path.replace('abc', 'abd'), now), false, 'another path');
    assert.equal(isSignedPeerRequest('another-secret-of-some-length', header, 'GET', path, now), false, 'another secret');
    for (const bad of [undefined, '', 't=1,sig=zz', `t=${now / 1000},sig=${'0'.repeat(63)}`, `${header},extra`]) assert.equal(isSignedPeerRequest(secret, bad, 'GET', path, now), false);
  });
});
