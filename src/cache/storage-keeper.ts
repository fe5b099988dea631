import type { Logger } from '../logger.js';
import type { Metrics } from '../metrics.js';
import { parseDigest } from '../oci/digest.js';
import type { BlobStore } from '../storage/blob-store.js';
import type { ManifestCache } from '../storage/manifest-cache.js';
import type { MetadataIndex } from '../storage/metadata-index.js';
import { planEviction } from './eviction-plan.js';

export interface StorageKeeperOptions {
  /** 0 = unbounded. */
  readonly maxBytes: number;
  readonly highWatermark: number;
  readonly lowWatermark: number;
  /** Temp files older than this cannot belong to a running fill. */
  readonly fillTimeoutMs: number;
}

/** Keeps the cache within its bounds: eviction by watermarks, garbage collection, removal. */
export interface StorageKeeper {
  /** When the cache is over its high watermark, evicts down to the low one. One run at a time. */
  maybeEvict(): Promise<{ objects: number; bytes: number }>;
  /** Removes blobs no manifest references (unread for `graceMs`), files the index does not know, and dead temp files. */
  collectGarbage(graceMs: number): Promise<{ blobs: number; files: number; temp: number }>;
  /** Deletes objects: index rows first (so nothing new is served from them), then files. */
  remove(digests: readonly string[]): Promise<number>;
}

export function createStorageKeeper(options: StorageKeeperOptions, deps: { index: MetadataIndex; store: BlobStore; memory: ManifestCache; metrics: Metrics; logger: Logger; now: () => number }): StorageKeeper {
  let evicting: Promise<{ objects: number; bytes: number }> | undefined;

  async function remove(digests: readonly string[]): Promise<number> {
    if (digests.length === 0) return 0;
    const sizes = new Map(digests.map((d) => [d, deps.index.getContent(d)?.size ?? 0]));
    deps.index.deleteContent(digests);
    let bytes = 0;
    for (const digest of digests) {
      deps.memory.delete(digest);
      try {
        // A client still reading the file keeps its descriptor: the bytes vanish when it is done.
        await deps.store.remove(parseDigest(digest));
        bytes += sizes.get(digest) ?? 0;
      } catch (err) {
        deps.metrics.storageErrors.inc({ operation: 'remove', code: (err as NodeJS.ErrnoException).code ?? 'unknown' });
        deps.logger.warn({ digest, err: (err as Error).message }, 'could not remove a file; gc will retry');
      }
    }
    return bytes;
  }

  async function evict(): Promise<{ objects: number; bytes: number }> {
    // Unbounded (the default): not even the size query, which runs every few seconds otherwise.
    if (options.maxBytes === 0) return { objects: 0, bytes: 0 };
    const { bytes: total } = deps.index.stats();
    if (total <= options.maxBytes * options.highWatermark) return { objects: 0, bytes: 0 };
    deps.index.flushAccess();
    const inputs = deps.index.evictionInputs();
    const victims = planEviction({ ...inputs, targetBytes: Math.floor(options.maxBytes * options.lowWatermark) });
    const bytes = await remove(victims);
    deps.metrics.evictions.inc(victims.length);
    deps.metrics.evictedBytes.inc(bytes);
    const after = deps.index.stats().bytes;
    deps.logger.info({ objects: victims.length, bytes, before: total, after, maxBytes: options.maxBytes }, 'evicted least recently used images');
    if (after > options.maxBytes) deps.logger.warn({ after, maxBytes: options.maxBytes, pinned: inputs.pinned.size }, 'still over storage.maxBytes: what is left is pinned or in use');
    return { objects: victims.length, bytes };
  }

  return {
    maybeEvict() {
      evicting ??= evict().finally(() => {
        evicting = undefined;
      });
      return evicting;
    },
    async collectGarbage(graceMs) {
      const now = deps.now();
      deps.index.flushAccess();
      const blobs = deps.index.unreferencedBlobs(now - graceMs);
      await remove(blobs);
      let files = 0;
      const known = new Set(deps.index.allDigests());
      for await (const file of deps.store.list()) {
        if (known.has(file.digest) || now - file.mtimeMs < graceMs) continue;
        try {
          await deps.store.remove(parseDigest(file.digest));
          files += 1;
        } catch {
          // Not a name we write, or already gone: leave it.
        }
      }
      let temp = 0;
      for (const file of await deps.store.listTemp()) {
        if (now - file.mtimeMs < options.fillTimeoutMs + 60_000) continue;
        await deps.store.discard(file.path);
        temp += 1;
      }
      deps.metrics.gcRemoved.inc({ kind: 'blob' }, blobs.length);
      deps.metrics.gcRemoved.inc({ kind: 'file' }, files);
      deps.metrics.gcRemoved.inc({ kind: 'temp' }, temp);
      if (blobs.length + files + temp > 0) deps.logger.info({ blobs: blobs.length, files, temp }, 'garbage collected');
      return { blobs: blobs.length, files, temp };
    },
    remove,
  };
}
