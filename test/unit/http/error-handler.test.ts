import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { toOciError } from '../../../src/http/error-handler.js';
import { OciError } from '../../../src/oci/errors.js';
import { UpstreamError } from '../../../src/upstream/upstream-error.js';

describe('toOciError', () => {
  it('answers bad percent-encoding in the path (a URIError from Express) with 400, not 500', () => {
    const mapped = toOciError(new URIError("Failed to decode param '%ZZ'"));
    assert.equal(mapped.status, 400);
    assert.equal(mapped.code, 'NAME_INVALID');
  });
  it('keeps OciErrors as they are', () => {
    const err = new OciError('NAME_INVALID', 'bad');
    assert.equal(toOciError(err), err);
    assert.equal(err.status, 400);
  });
  it('turns upstream outages into 503 UNAVAILABLE naming the upstream', () => {
    for (const kind of ['unreachable', 'timeout', 'invalid'] as const) {
      const mapped = toOciError(new UpstreamError(kind, 'ghcr.io', `upstream ghcr.io failed (${kind})`));
      assert.equal(mapped.code, 'UNAVAILABLE');
      assert.equal(mapped.status, 503);
      assert.deepEqual(mapped.detail, { upstream: 'ghcr.io' });
    }
    assert.equal(toOciError(new UpstreamError('status', 'x', 'm', { status: 502 })).status, 503);
  });
  it('passes rate limits on as 429 with Retry-After', () => {
    const mapped = toOciError(new UpstreamError('status', 'docker.io', 'slow down', { status: 429, retryAfterSeconds: 30 }));
    assert.equal(mapped.code, 'TOOMANYREQUESTS');
    assert.equal(mapped.headers['retry-after'], '30');
  });
  it('asks for credentials when the upstream wants them', () => {
    const mapped = toOciError(new UpstreamError('auth', 'docker.io', 'denied', { status: 401 }));
    assert.equal(mapped.status, 401);
    assert.equal(mapped.code, 'UNAUTHORIZED');
  });
  it('passes an upstream 403 on as DENIED, not as a request for credentials', () => {
    const mapped = toOciError(new UpstreamError('auth', 'ghcr.io', 'refused access (403)', { status: 403 }));
    assert.equal(mapped.code, 'DENIED');
    assert.equal(mapped.status, 403);
  });
  it('hides anything else behind 500 UNKNOWN', () => {
    const mapped = toOciError(new Error('secret internals'));
    assert.equal(mapped.code, 'UNKNOWN');
    assert.doesNotMatch(mapped.message, /secret/);
  });
});
