import { createHash } from 'node:crypto';
import { pipeline } from 'node:stream/promises';
import { Writable } from 'node:stream';
import { parseDigest } from '../oci/digest.js';
import type { ImageReference } from '../oci/image-reference.js';
import { isReservedTagName } from '../oci/referrers.js';
import type { BlobStore } from '../storage/blob-store.js';
import type { ContentIndex, PinIndex, ReportIndex, TagIndex } from '../storage/metadata-index.js';
import { planEviction } from './eviction-plan.js';
import type { StorageKeeper } from './storage-keeper.js';

/** One cached tag, as `pullthrough ls` and the admin API show it. */
export interface ImageRow {
  readonly image: string;
  readonly digest: string;
  readonly sizeBytes: number;
  readonly pulls: number;
  readonly lastPulledAt: number | null;
  readonly isPinned: boolean;
}

export interface VerifyReport {
  readonly checked: number;
  readonly missing: readonly string[];
  readonly corrupt: readonly string[];
  readonly repaired: boolean;
}

/** What operators do to the cache by hand: the CLI and the admin API both use this. */
export interface CacheAdmin {
  list(): ImageRow[];
  stats(): { bytes: number; objects: number; images: number; pinned: number };
  /** Whether the cache holds the image's manifest, and whether it is pinned (by tag or digest); undefined when not cached. */
  find(image: ImageReference): { isPinned: boolean } | undefined;
  pin(image: ImageReference): void;
  /** False when it was not pinned. */
  unpin(image: ImageReference): boolean;
  /** Drops a tag (or digest) and whatever only it kept; false when the cache does not have it. */
  remove(image: ImageReference): Promise<{ isFound: boolean; objects: number; bytes: number }>;
  gc(graceMs: number): Promise<{ blobs: number; files: number; temp: number }>;
  /** Re-hashes every object; with `repair`, drops missing and corrupt ones so they are fetched again. */
  verify(options: { repair: boolean; onProgress?: (checked: number, total: number) => void }): Promise<VerifyReport>;
}

const linkOf = (image: ImageReference) => ({ upstream: image.registry, repository: image.repository });

export function createCacheAdmin(deps: { index: ContentIndex & TagIndex & PinIndex & ReportIndex; store: BlobStore; keeper: StorageKeeper }): CacheAdmin {
  const { index } = deps;
  // Tag rows that are not tags (a cached referrers answer) are nobody's image.
  const images = () => index.listTagsDetailed().filter((t) => !isReservedTagName(t.tag));
  const rootOf = (image: ImageReference) => (image.digest ? image.digest.value : image.tag ? index.getTag(linkOf(image), image.tag)?.digest : undefined);

  return {
    list() {
      const sizes = new Map(index.topImages('size', 1_000_000).map((i) => [`${i.upstream}/${i.repository}:${i.tag}`, i.sizeBytes]));
      return images().map((t) => {
        const link = { upstream: t.upstream, repository: t.repository };
        return {
          image: `${t.upstream}/${t.repository}:${t.tag}`,
          digest: t.digest,
          sizeBytes: sizes.get(`${t.upstream}/${t.repository}:${t.tag}`) ?? 0,
          pulls: t.pulls,
          lastPulledAt: t.lastPulledAt,
          isPinned: index.isPinned(link, t.tag) || index.isPinned(link, t.digest),
        };
      });
    },
    stats() {
      const tags = images();
      const pinned = tags.filter((t) => index.isPinned(t, t.tag) || index.isPinned(t, t.digest)).length;
      return { ...index.stats(), images: tags.length, pinned };
    },
    find(image) {
      const root = rootOf(image);
      if (!root || !index.getContent(root)) return undefined;
      const link = linkOf(image);
      return { isPinned: index.isPinned(link, root) || (image.tag !== undefined && index.isPinned(link, image.tag)) };
    },
    pin(image) {
      index.pin(linkOf(image), image.digest?.value ?? image.tag ?? 'latest');
    },
    unpin(image) {
      return index.unpin(linkOf(image), image.digest?.value ?? image.tag ?? 'latest');
    },
    async remove(image) {
      const root = rootOf(image);
      if (!root || !index.getContent(root)) return { isFound: false, objects: 0, bytes: 0 };
      const link = linkOf(image);
      if (image.tag) {
        index.unpin(link, image.tag);
        index.deleteTag(link, image.tag);
      }
      index.unpin(link, root);
      // Content goes only when nothing else needs it: every other root, tag and pin keeps its tree.
      const inputs = index.evictionInputs();
      const tagged = index.listTagsDetailed().map((t) => t.digest);
      const stillTagged = tagged.includes(root);
      const keep = new Set([...inputs.pinned, ...tagged, ...rootsExcept(inputs, root)]);
      keep.delete(root);
      const victims = stillTagged || inputs.pinned.has(root) ? [] : planEviction({ ...inputs, pinned: keep, targetBytes: 0 });
      const bytes = await deps.keeper.remove(victims);
      return { isFound: true, objects: victims.length, bytes };
    },
    gc: (graceMs) => deps.keeper.collectGarbage(graceMs),
    async verify({ repair, onProgress }) {
      const digests = index.allDigests();
      const missing: string[] = [];
      const corrupt: string[] = [];
      let checked = 0;
      for (const value of digests) {
        const digest = parseDigest(value);
        const hash = createHash(digest.algorithm);
        try {
          await pipeline(deps.store.createReadStream(digest), new Writable({ write: (chunk: Buffer, _e, cb) => cb(void hash.update(chunk)) }));
          if (`${digest.algorithm}:${hash.digest('hex')}` !== value) corrupt.push(value);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === 'ENOENT') missing.push(value);
          else throw err;
        }
        checked += 1;
        onProgress?.(checked, digests.length);
      }
      if (repair) await deps.keeper.remove([...missing, ...corrupt]);
      return { checked, missing, corrupt, repaired: repair };
    },
  };
}

/** Every root but `root`: eviction may then take `root` and what only it holds, nothing else. */
function rootsExcept(inputs: ReturnType<ReportIndex['evictionInputs']>, root: string): string[] {
  const children = new Set(inputs.edges.map((e) => e.child));
  return inputs.nodes.filter((n) => n.digest !== root && !children.has(n.digest)).map((n) => n.digest);
}
