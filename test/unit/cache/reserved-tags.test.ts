import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createCacheAdmin } from '../../../src/cache/cache-admin.js';
import { createMetadataIndex } from '../../../src/storage/metadata-index.js';
import type { BlobStore } from '../../../src/storage/blob-store.js';
import type { StorageKeeper } from '../../../src/cache/storage-keeper.js';

describe('tag rows that are not tags', () => {
  it('are left out of what people see: ls, stats and the status page lists', () => {
    const index = createMetadataIndex({ path: ':memory:' }, { now: () => 1 });
    const link = { upstream: 'docker.io', repository: 'library/app' };
    const image = `sha256:${'1'.repeat(64)}`;
    const answer = `sha256:${'2'.repeat(64)}`;
    index.putContent({ digest: image, size: 10, mediaType: 'application/vnd.oci.image.manifest.v1+json', kind: 'manifest' }, link);
    index.putContent({ digest: answer, size: 20, mediaType: 'application/vnd.oci.image.index.v1+json', kind: 'manifest' }, link);
    index.putTag(link, '1.0', { digest: image, mediaType: 'application/vnd.oci.image.manifest.v1+json', checkedAt: 1 });
    index.putTag(link, `referrers:${image}`, { digest: answer, mediaType: 'application/vnd.oci.image.index.v1+json', checkedAt: 1 });
    const admin = createCacheAdmin({ index, store: {} as BlobStore, keeper: {} as StorageKeeper });
    assert.deepEqual(admin.list().map((i) => i.image), ['docker.io/library/app:1.0']);
    assert.equal(admin.stats().images, 1);
    assert.deepEqual(index.topImages('size', 10).map((i) => i.tag), ['1.0']);
    assert.deepEqual(index.topImages('pulls', 10).map((i) => i.tag), ['1.0']);
  });
});
