import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createManifestCache } from '../../../src/storage/manifest-cache.js';

const manifest = (digest: string, size: number) => ({ digest, mediaType: 'm/t', bytes: Buffer.alloc(size) });

describe('manifest cache', () => {
  it('stays within its byte bound, dropping the least recently used', () => {
    const cache = createManifestCache({ maxBytes: 100 });
    cache.set(manifest('a', 40));
    cache.set(manifest('b', 40));
    cache.get('a');
    cache.set(manifest('c', 40));
    assert.ok(cache.get('a'), 'recently read, kept');
    assert.equal(cache.get('b'), undefined, 'least recently used, dropped');
    assert.ok(cache.get('c'));
  });

  it('does not hold a manifest larger than the whole bound', () => {
    const cache = createManifestCache({ maxBytes: 100 });
    cache.set(manifest('big', 101));
    assert.equal(cache.get('big'), undefined);
  });
});
