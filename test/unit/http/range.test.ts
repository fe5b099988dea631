import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseRange } from '../../../src/http/range.js';

describe('Range', () => {
  const size = 1000;
  it('reads the single-range forms of RFC 9110', () => {
    assert.deepEqual(parseRange('bytes=0-99', size), { kind: 'partial', start: 0, end: 99 });
    assert.deepEqual(parseRange('bytes=500-', size), { kind: 'partial', start: 500, end: 999 });
    assert.deepEqual(parseRange('bytes=-100', size), { kind: 'partial', start: 900, end: 999 });
    assert.deepEqual(parseRange('bytes=900-5000', size), { kind: 'partial', start: 900, end: 999 });
    assert.deepEqual(parseRange('bytes=-5000', size), { kind: 'partial', start: 0, end: 999 });
    assert.deepEqual(parseRange('bytes=999-999', size), { kind: 'partial', start: 999, end: 999 });
  });
  it('is unsatisfiable past the end', () => {
    assert.deepEqual(parseRange('bytes=1000-', size), { kind: 'unsatisfiable' });
    assert.deepEqual(parseRange('bytes=1000-2000', size), { kind: 'unsatisfiable' });
    assert.deepEqual(parseRange('bytes=-0', size), { kind: 'unsatisfiable' });
    assert.deepEqual(parseRange('bytes=0-', 0), { kind: 'unsatisfiable' });
  });
  it('ignores what it may ignore: no header, other units, bad syntax, several ranges', () => {
    for (const header of [undefined, 'items=0-1', 'bytes=a-b', 'bytes=5-1', 'bytes=0-1,5-6', 'bytes=-', 'bytes=1.5-2']) {
      assert.deepEqual(parseRange(header, size), { kind: 'full' }, String(header));
    }
  });
});
