import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { MetadataIndex } from '../../src/storage/metadata-index.js';

const d = (c: string) => `sha256:${c.repeat(64)}`;
const hub = { upstream: 'docker.io', repository: 'library/app' };
const ghcr = { upstream: 'ghcr.io', repository: 'library/app' };

/** One behaviour, every implementation: each backing store runs this suite (distribution's cachecheck). */
export function describeMetadataIndex(name: string, make: (clock: { now: number }) => Promise<MetadataIndex>): void {
  describe(`MetadataIndex contract: ${name}`, () => {
    it('stores content and upgrades a blob row to a manifest', async () => {
      const index = await make({ now: 1 });
      assert.equal(index.getContent(d('a')), undefined);
      index.putContent({ digest: d('a'), size: 10, mediaType: null, kind: 'blob' }, hub);
      assert.deepEqual(index.getContent(d('a')), { digest: d('a'), size: 10, mediaType: null, kind: 'blob' });
      index.putContent({ digest: d('a'), size: 10, mediaType: 'm/t', kind: 'manifest' }, hub, [d('b')]);
      assert.deepEqual(index.getContent(d('a')), { digest: d('a'), size: 10, mediaType: 'm/t', kind: 'manifest' });
      index.close();
    });

    it('keeps tags per upstream and repository', async () => {
      const index = await make({ now: 1 });
      index.putContent({ digest: d('a'), size: 1, mediaType: 'm/t', kind: 'manifest' }, hub);
      index.putContent({ digest: d('b'), size: 1, mediaType: 'm/t', kind: 'manifest' }, ghcr);
      index.putTag(hub, '1.0', { digest: d('a'), mediaType: 'm/t', checkedAt: 5 });
      index.putTag(ghcr, '1.0', { digest: d('b'), mediaType: 'm/t', checkedAt: 6 });
      assert.equal(index.getTag(hub, '1.0')?.digest, d('a'));
      assert.equal(index.getTag(ghcr, '1.0')?.digest, d('b'));
      index.touchTag(hub, '1.0', 9);
      assert.equal(index.getTag(hub, '1.0')?.checkedAt, 9);
      assert.deepEqual(index.listTags(hub), ['1.0']);
      index.deleteTag(hub, '1.0');
      assert.equal(index.getTag(hub, '1.0'), undefined);
      assert.deepEqual(index.listRepositories(), [ghcr, hub].sort((x, y) => x.upstream.localeCompare(y.upstream)));
      index.close();
    });

    it('drops tags and links with the content they point at', async () => {
      const index = await make({ now: 1 });
      index.putContent({ digest: d('a'), size: 1, mediaType: 'm/t', kind: 'manifest' }, hub);
      index.putTag(hub, 'x', { digest: d('a'), mediaType: 'm/t', checkedAt: 1 });
      index.deleteContent([d('a')]);
      assert.equal(index.getTag(hub, 'x'), undefined);
      assert.deepEqual(index.listRepositories(), []);
      assert.deepEqual(index.allDigests(), []);
      index.close();
    });

    it('flushes batched accesses without inventing rows for unknown content', async () => {
      const clock = { now: 1 };
      const index = await make(clock);
      index.putContent({ digest: d('c'), size: 1, mediaType: null, kind: 'blob' });
      const lastAccess = () => index.evictionInputs().nodes.find((n) => n.digest === d('c'))?.lastAccessAt;
      assert.equal(lastAccess(), 1);
      clock.now = 50;
      index.recordAccess(d('c'));
      index.recordAccess(d('f'));
      index.flushAccess();
      assert.equal(lastAccess(), 50, 'the batched access landed');
      clock.now = 60;
      index.recordAccess(d('c'));
      clock.now = 70;
      index.flushAccess();
      assert.equal(lastAccess(), 60, 'an access is dated when it happened, not when it was flushed');
      assert.deepEqual(index.allDigests(), [d('c')]);
      index.close();
    });
  });
}
