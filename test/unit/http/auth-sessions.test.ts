import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { makeCredentials } from '../../../src/config/credentials.js';
import { createAuthSessions } from '../../../src/http/auth-challenge.js';
import { clientKey, createTokenRateLimiter } from '../../../src/http/token-rate-limit.js';
import { OciError } from '../../../src/oci/errors.js';

const MiB = 2 ** 20;

function sessions(maxBytes: number, now = () => 0) {
  return createAuthSessions({ ttlMs: 3_600_000, maxBytes }, { now });
}

describe('token sessions under a flood', () => {
  it('stay within their byte bound through 20k issuances with 2 KB passwords, and keep the token alice uses', () => {
    const maxBytes = 4 * MiB;
    const store = sessions(maxBytes);
    const alice = store.issue(makeCredentials('alice', 'wonderland')).token;
    const password = 'p'.repeat(2048);
    let peak = 0;
    for (let i = 0; i < 20_000; i++) {
      store.issue(makeCredentials(`mallory${i}`, password));
      // Alice pulls now and then, far less often than the flood issues.
      if (i % 2_000 === 0) assert.equal(store.resolve(alice)?.credentials?.username, 'alice', `alice's token lost after ${i} issuances`);
      peak = Math.max(peak, store.sizeBytes);
    }
    assert.ok(peak <= maxBytes, `sessions held ${peak} bytes, bound ${maxBytes}`);
    // Each 2 KB session counts at over 4 KB: unused ones fill the quarter for new sessions (about
    // 250 of them), not 20k.
    assert.ok(peak > maxBytes / 5, `the flood filled the new sessions' segment (${peak} bytes)`);
    assert.equal(store.resolve(alice)?.credentials?.username, 'alice');
  });

  it('evicts, among used sessions, the least recently used', () => {
    const store = sessions(64 * 1024);
    const first = store.issue(undefined).token;
    store.resolve(first);
    for (let i = 0; i < 1_000; i++) store.resolve(store.issue(undefined).token);
    assert.equal(store.resolve(first), undefined);
  });

  it('refuses credentials over 4 KiB with a 400, keeping nothing', () => {
    const store = sessions(MiB);
    assert.throws(() => store.issue(makeCredentials('u', 'x'.repeat(4096))), (err: unknown) => err instanceof OciError && err.status === 400);
    assert.equal(store.sizeBytes, 0);
    assert.ok(store.issue(makeCredentials('u', 'x'.repeat(4000))).token);
  });

  it('expires tokens after their TTL', () => {
    let now = 0;
    const store = sessions(MiB, () => now);
    const token = store.issue(undefined).token;
    now = 3_600_000;
    assert.equal(store.resolve(token), undefined);
  });
});

describe('token rate limit per address', () => {
  it('gives a burst, then asks to retry, refilling at its rate; other addresses are unaffected', () => {
    let now = 0;
    const limiter = createTokenRateLimiter({ perSecond: 2, burst: 3 }, { now: () => now });
    for (let i = 0; i < 3; i++) assert.equal(limiter.take('127.0.0.1'), undefined);
    assert.equal(limiter.take('127.0.0.1'), 1);
    assert.equal(limiter.take('127.0.0.2'), undefined);
    now = 500;
    assert.equal(limiter.take('127.0.0.1'), undefined);
    assert.equal(limiter.take('::ffff:127.0.0.1'), 1, 'an IPv4-mapped address is the same client');
  });

  it('keys IPv6 clients by their /64', () => {
    assert.equal(clientKey('2001:db8:1:2:aaaa::1'), clientKey('2001:db8:1:2:bbbb:cccc:dddd:eeee'));
    assert.notEqual(clientKey('2001:db8:1:2::1'), clientKey('2001:db8:1:3::1'));
    assert.equal(clientKey('::1'), '0:0:0:0::/64');
    assert.equal(clientKey('::ffff:10.0.0.1'), '10.0.0.1');
  });
});
