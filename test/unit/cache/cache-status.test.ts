import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { createCacheStatus, SUMMARY_TTL_MS } from '../../../src/cache/cache-status.js';
import { createMetrics } from '../../../src/metrics.js';
import type { BlobStore } from '../../../src/storage/blob-store.js';
import { createMetadataIndex, type ImageSummary, type MetadataIndex } from '../../../src/storage/metadata-index.js';
import type { UpstreamRouter } from '../../../src/upstream/upstream-router.js';

const digestOf = (name: string) => `sha256:${Buffer.from(name).toString('hex').padEnd(64, '0').slice(0, 64)}`;

/** What the status page showed before: one recursive query per tag. The oracle for the numbers. */
const RECURSIVE_SIZES = `WITH RECURSIVE reach(upstream, repository, tag, digest) AS (
    SELECT upstream, repository, tag, digest FROM tags
    UNION
    SELECT reach.upstream, reach.repository, reach.tag, r.child FROM reach JOIN manifest_references r ON r.manifest = reach.digest
  )
  SELECT t.upstream, t.repository, t.tag, (SELECT SUM(c.size) FROM reach JOIN content c ON c.digest = reach.digest
     WHERE reach.upstream = t.upstream AND reach.repository = t.repository AND reach.tag = t.tag) AS size
  FROM tags t`;

/** A few thousand tags: images sharing a base layer, some behind two-platform indexes, some with layers not cached. */
function seed(index: MetadataIndex, tags: number): void {
  const base = digestOf('base');
  index.putContent({ digest: base, size: 5_000, mediaType: null, kind: 'blob' });
  for (let i = 0; i < tags; i++) {
    const link = { upstream: i % 3 === 0 ? 'ghcr.io' : 'docker.io', repository: `team/app${i % 250}` };
    const image = (platform: string) => {
      const config = digestOf(`config-${i}-${platform}`);
      const layer = digestOf(`layer-${i}-${platform}`);
      index.putContent({ digest: config, size: 100 + i, mediaType: null, kind: 'blob' }, link);
      // Every seventh image's own layer is referenced but was never fetched.
      if (i % 7 !== 0) index.putContent({ digest: layer, size: 1_000 + 3 * i, mediaType: null, kind: 'blob' }, link);
      const manifest = digestOf(`manifest-${i}-${platform}`);
      index.putContent({ digest: manifest, size: 500, mediaType: 'application/vnd.oci.image.manifest.v1+json', kind: 'manifest' }, link, [config, base, layer]);
      return manifest;
    };
    let tagged = image('amd64');
    if (i % 5 === 0) {
      const arm = image('arm64');
      tagged = digestOf(`index-${i}`);
      index.putContent({ digest: tagged, size: 300, mediaType: 'application/vnd.oci.image.index.v1+json', kind: 'manifest' }, link, [digestOf(`manifest-${i}-amd64`), arm]);
    }
    index.putTag(link, `v${i}`, { digest: tagged, mediaType: 'application/vnd.oci.image.manifest.v1+json', checkedAt: 0 });
    for (let p = 0; p < i % 13; p++) index.recordPull(link, `v${i}`);
  }
}

describe('status summary', () => {
  let dir: string;
  let index: MetadataIndex;
  const calls = new Map<string, number>();
  let spied: MetadataIndex;

  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'pullthrough-status-'));
    index = createMetadataIndex({ path: path.join(dir, 'index.db') }, { now: () => 1_000 });
    seed(index, 3_000);
    spied = new Proxy(index, {
      get(target, property, receiver) {
        const value = Reflect.get(target, property, receiver) as unknown;
        if (typeof value !== 'function') return value;
        return (...args: unknown[]) => {
          calls.set(String(property), (calls.get(String(property)) ?? 0) + 1);
          return (value as (...a: unknown[]) => unknown).apply(target, args);
        };
      },
    });
  });
  after(async () => {
    index.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('sizes every tag as the recursive query did, in one linear walk', () => {
    index.flushAccess();
    const db = new Database(path.join(dir, 'index.db'), { readonly: true });
    const expected = new Map((db.prepare(RECURSIVE_SIZES).all() as Array<{ upstream: string; repository: string; tag: string; size: number | null }>).map((r) => [`${r.upstream}/${r.repository}:${r.tag}`, r.size ?? 0]));
    db.close();
    const all = index.topImages('size', 1_000_000);
    assert.equal(all.length, 3_000);
    for (const image of all) assert.equal(image.sizeBytes, expected.get(`${image.upstream}/${image.repository}:${image.tag}`), `${image.repository}:${image.tag}`);
    const sizes = all.map((i) => i.sizeBytes);
    assert.deepEqual(sizes, [...sizes].sort((a, b) => b - a), 'largest first');
    const pulls = index.topImages('pulls', 50).map((i) => i.pulls);
    assert.deepEqual(pulls, [...pulls].sort((a, b) => b - a), 'most pulled first');
    assert.equal(pulls[0], 12);
  });

  it('is computed once per TTL: a second hit runs no index query, and a later one sees new pulls', async () => {
    let now = 10_000;
    const status = createCacheStatus({
      router: { upstreams: [] } as unknown as UpstreamRouter,
      index: spied,
      store: {} as BlobStore,
      metrics: createMetrics({ withDefaultMetrics: false }),
      now: () => now,
      defaultHost: 'docker.io',
      isOffline: () => false,
      isPublic: () => true,
    });
    calls.clear();
    const first = await status.report();
    assert.ok((calls.get('topImages') ?? 0) > 0 && (calls.get('stats') ?? 0) > 0);
    assert.equal(first.largest.length, 10);
    const top = first.mostPulled[0] as ImageSummary;
    assert.equal(top.pulls, 12);

    calls.clear();
    now += SUMMARY_TTL_MS - 1;
    index.recordPull(top, top.tag);
    const second = await status.report();
    assert.deepEqual([...calls.keys()], [], 'the cached summary served the second hit');
    assert.deepEqual(second.mostPulled, first.mostPulled);

    now += 1;
    const third = await status.report();
    assert.ok((calls.get('flushAccess') ?? 0) > 0);
    assert.equal(third.mostPulled[0]?.pulls, 13, 'the pull recorded since is counted');
    assert.equal(third.storage.objects, first.storage.objects);
  });
});
