import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { toOciError } from '../../../src/http/error-handler.js';
import { OciError } from '../../../src/oci/errors.js';

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
  it('hides anything else behind 500 UNKNOWN', () => {
    const mapped = toOciError(new Error('secret internals'));
    assert.equal(mapped.code, 'UNKNOWN');
    assert.doesNotMatch(mapped.message, /secret/);
  });
});
