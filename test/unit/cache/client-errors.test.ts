import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { toClientError as mapError } from '../../../src/cache/client-errors.js';
import { OciError } from '../../../src/oci/errors.js';
import { UpstreamError } from '../../../src/upstream/upstream-error.js';

/** What the registry port throws for an upstream failure: always an OciError. */
const toClientError = (err: unknown): OciError => {
  const mapped = mapError(err);
  assert.ok(mapped instanceof OciError);
  return mapped;
};

describe('toClientError', () => {
  it('turns upstream outages into 503 UNAVAILABLE naming the upstream', () => {
    for (const kind of ['unreachable', 'timeout', 'invalid'] as const) {
      const mapped = toClientError(new UpstreamError(kind, 'ghcr.io', `upstream ghcr.io failed (${kind})`));
      assert.equal(mapped.code, 'UNAVAILABLE');
      assert.equal(mapped.status, 503);
      assert.deepEqual(mapped.detail, { upstream: 'ghcr.io' });
    }
    assert.equal(toClientError(new UpstreamError('status', 'x', 'm', { status: 502 })).status, 503);
  });
  it('passes rate limits on as 429 with Retry-After', () => {
    const mapped = toClientError(new UpstreamError('status', 'docker.io', 'slow down', { status: 429, retryAfterSeconds: 30 }));
    assert.equal(mapped.code, 'TOOMANYREQUESTS');
    assert.equal(mapped.headers['retry-after'], '30');
  });
  it('asks for credentials when the upstream wants them', () => {
    const mapped = toClientError(new UpstreamError('auth', 'docker.io', 'denied', { status: 401 }));
    assert.equal(mapped.status, 401);
    assert.equal(mapped.code, 'UNAUTHORIZED');
  });
  it('passes an upstream 403 on as DENIED, not as a request for credentials', () => {
    const mapped = toClientError(new UpstreamError('auth', 'ghcr.io', 'refused access (403)', { status: 403 }));
    assert.equal(mapped.code, 'DENIED');
    assert.equal(mapped.status, 403);
  });
  it('keeps the socket error under an upstream failure for the log, not for the client', () => {
    const mapped = toClientError(new UpstreamError('unreachable', 'ghcr.io', 'upstream ghcr.io is unreachable', { cause: Object.assign(new Error('connect'), { code: 'ECONNREFUSED' }) }));
    assert.equal(mapped.upstreamFailure, 'upstream ghcr.io is unreachable (ECONNREFUSED)');
    assert.doesNotMatch(mapped.message, /ECONNREFUSED/);
  });
  it('passes other errors through', () => {
    const err = new Error('x');
    assert.equal(mapError(err), err);
  });
});
