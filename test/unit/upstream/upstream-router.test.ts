import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Upstream } from '../../../src/upstream/upstream-client.js';
import { createUpstreamRouter } from '../../../src/upstream/upstream-router.js';
import { UpstreamError } from '../../../src/upstream/upstream-error.js';

function fakeUpstream(host: string, closed: string[]): Upstream {
  return { host, close: async () => void closed.push(host) } as unknown as Upstream;
}

describe('upstream router: the catch-all', () => {
  it('keeps made upstreams in an LRU: a flood of made-up hosts cannot lock real ones out', () => {
    const closed: string[] = [];
    const made: string[] = [];
    const router = createUpstreamRouter([fakeUpstream('docker.io', closed)], {
      defaultHost: 'docker.io',
      catchAll: { maxHosts: 3, isAllowedHost: () => true, create: (host) => (made.push(host), fakeUpstream(host, closed)) },
    });
    const route = (host: string) => router.route({ name: 'team/app', namespace: host }).upstream.host;
    assert.equal(route('ghcr.io'), 'ghcr.io');
    for (let i = 0; i < 50; i++) {
      assert.equal(route(`flood-${i}.example`), `flood-${i}.example`);
      // The real host keeps being asked for, so it stays.
      assert.equal(route('ghcr.io'), 'ghcr.io');
    }
    assert.equal(made.filter((h) => h === 'ghcr.io').length, 1, 'ghcr.io was never pushed out');
    assert.equal(router.dynamicUpstreams().length, 3);
    assert.equal(closed.length, 48, 'pushed-out upstreams are closed');
    assert.equal(route('docker.io'), 'docker.io');
  });

  it('refuses hosts the policy refuses with DENIED, before making anything for them', () => {
    const made: string[] = [];
    const router = createUpstreamRouter([fakeUpstream('docker.io', [])], {
      defaultHost: 'docker.io',
      catchAll: { maxHosts: 10, isAllowedHost: (host) => !host.startsWith('127.'), create: (host) => (made.push(host), fakeUpstream(host, [])) },
    });
    assert.throws(() => router.route({ name: 'a/b', namespace: '127.0.0.1:5000' }), (err: unknown) => err instanceof UpstreamError && err.kind === 'denied');
    assert.deepEqual(made, []);
  });
});
