import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { NotFoundCache } from '../../../src/cache/not-found-cache.js';
import { createTagTtlPolicy, isTagFresh, isUpstreamOutage } from '../../../src/cache/tag-freshness.js';
import { UpstreamError } from '../../../src/upstream/upstream-error.js';

describe('tag freshness', () => {
  const policy = createTagTtlPolicy([
    {
      host: 'docker.io',
      tagTtlMs: 300_000,
      tagTtlRules: [
        { match: 'latest', ttlMs: 0 },
        { match: '*-snapshot', ttlMs: 30_000 },
        { regex: '^v?\\d+\\.\\d+\\.\\d+$', ttlMs: 604_800_000 },
      ],
    },
    { host: 'ghcr.io', tagTtlMs: 60_000, tagTtlRules: [] },
  ]);

  it('applies the first matching rule, else the upstream tagTtl', () => {
    assert.equal(policy('docker.io', 'latest'), 0);
    assert.equal(policy('docker.io', 'nightly-snapshot'), 30_000);
    assert.equal(policy('docker.io', '1.25.3'), 604_800_000);
    assert.equal(policy('docker.io', 'v1.25.3'), 604_800_000);
    assert.equal(policy('docker.io', '1.25'), 300_000);
    assert.equal(policy('docker.io', 'latest-snapshot'), 30_000, 'globs match the whole tag');
    assert.equal(policy('ghcr.io', 'latest'), 60_000);
  });

  it('treats a TTL of 0 as never fresh', () => {
    assert.equal(isTagFresh(1000, 1000, 0), false);
    assert.equal(isTagFresh(1000, 1999, 1000), true);
    assert.equal(isTagFresh(1000, 2000, 1000), false);
  });

  it('serves stale on outages only, never on 404 or auth failures', () => {
    assert.ok(isUpstreamOutage(new UpstreamError('unreachable', 'x', 'm')));
    assert.ok(isUpstreamOutage(new UpstreamError('timeout', 'x', 'm')));
    assert.ok(isUpstreamOutage(new UpstreamError('status', 'x', 'm', { status: 503 })));
    assert.ok(isUpstreamOutage(new UpstreamError('status', 'x', 'm', { status: 429 })));
    assert.ok(!isUpstreamOutage(new UpstreamError('status', 'x', 'm', { status: 404 })));
    assert.ok(!isUpstreamOutage(new UpstreamError('auth', 'x', 'm', { status: 401 })));
    assert.ok(!isUpstreamOutage(new Error('x')));
  });
});

describe('NotFoundCache', () => {
  it('remembers for the TTL and stays bounded', () => {
    let now = 0;
    const cache = new NotFoundCache(() => now, 2);
    cache.add('a', 1000);
    assert.ok(cache.has('a'));
    now = 1000;
    assert.ok(!cache.has('a'));
    cache.add('a', 1000);
    cache.add('b', 1000);
    cache.add('c', 1000);
    assert.ok(!cache.has('a'), 'the oldest entry made room');
    assert.ok(cache.has('c'));
    cache.add('z', 0);
    assert.ok(!cache.has('z'));
    assert.ok(cache.has('b'));
    cache.add('d', 1000);
    assert.ok(cache.has('b') && !cache.has('c'), 'an entry asked for stays; the least recently used makes room');
  });
});
