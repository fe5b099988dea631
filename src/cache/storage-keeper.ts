import type { Logger } from '../logger.js';
import type { Metrics } from '../metrics.js';
import { parseDigest } from '../oci/digest.js';
import type { BlobStore } from '../storage/blob-store.js';
import type { ManifestCache } from '../storage/manifest-cache.js';
import type { ContentIndex, ReportIndex } from '../storage/metadata-index.js';
import { OciError } from '../oci/errors.js';
import { planEviction } from './eviction-plan.js';

export interface StorageKeeperOptions {
  /** 0 = unbounded. */
  readonly maxBytes: number;
  readonly highWatermark: number;
  readonly lowWatermark: number;
  /** Temp files older than this cannot belong to a running fill. */
  readonly fillTimeoutMs: number;
}

/** Disk a running fill holds against `maxBytes` until its content is indexed (or discarded). */
export interface SpaceClaim {
  /** Bytes held now. */
  readonly bytes: number;
  /**
   * Holds `bytes` more (a body of unknown length that grew past its claim), evicting if it must.
   * @throws OciError UNAVAILABLE (with Retry-After) when they do not fit; the claim keeps what it had.
   */
  grow(bytes: number): Promise<void>;
  /** Gives the bytes back; call once the content is indexed or its temp file is gone. Idempotent. */
  release(): void;
}

/** Seconds a client told "no room" waits before asking again: about one eviction or fill later. */
export const STORAGE_FULL_RETRY_AFTER_SECONDS = 10;

/** Keeps the cache within its bounds: eviction by watermarks, garbage collection, removal. */
export interface StorageKeeper {
  /**
   * When the cache (indexed bytes plus the bytes claimed by running fills) is over its high
   * watermark, evicts indexed content down to the low one. One run at a time.
   */
  maybeEvict(): Promise<{ objects: number; bytes: number }>;
  /**
   * Claims `bytes` of disk for a fill before it writes them, evicting least recently used images
   * when the cache would pass `maxBytes`: temp files count against the bound as much as committed
   * blobs, so concurrent fills cannot overrun it.
   * @throws OciError UNAVAILABLE (with Retry-After) when they do not fit even after eviction.
   */
  claim(bytes: number): Promise<SpaceClaim>;
  /** Bytes claimed by running fills. */
  readonly claimedBytes: number;
  /** Removes blobs no manifest references (unread for `graceMs`), files the index does not know, and dead temp files. */
  collectGarbage(graceMs: number): Promise<{ blobs: number; files: number; temp: number }>;
  /** Deletes objects: index rows first (so nothing new is served from them), then files. */
  remove(digests: readonly string[]): Promise<number>;
}

export function createStorageKeeper(options: StorageKeeperOptions, deps: { index: ContentIndex & ReportIndex; store: BlobStore; memory: ManifestCache; metrics: Metrics; logger: Logger; now: () => number }): StorageKeeper {
  let evicting: Promise<{ objects: number; bytes: number }> | undefined;
  let claimed = 0;
  const isBounded = options.maxBytes > 0;
  const fits = (bytes: number) => deps.index.stats().bytes + claimed + bytes <= options.maxBytes;

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
    if (!isBounded) return { objects: 0, bytes: 0 };
    const { bytes: total } = deps.index.stats();
    if (total + claimed <= options.maxBytes * options.highWatermark) return { objects: 0, bytes: 0 };
    deps.index.flushAccess();
    const inputs = deps.index.evictionInputs();
    // What running fills hold will be indexed soon: make room for it too.
    const victims = planEviction({ ...inputs, targetBytes: Math.max(0, Math.floor(options.maxBytes * options.lowWatermark) - claimed) });
    const bytes = await remove(victims);
    deps.metrics.evictions.inc(victims.length);
    deps.metrics.evictedBytes.inc(bytes);
    const after = deps.index.stats().bytes;
    deps.logger.info({ objects: victims.length, bytes, before: total, after, maxBytes: options.maxBytes }, 'evicted least recently used images');
    if (after + claimed > options.maxBytes) deps.logger.warn({ after, maxBytes: options.maxBytes, pinned: inputs.pinned.size }, 'still over storage.maxBytes: what is left is pinned or in use');
    return { objects: victims.length, bytes };
  }

  function maybeEvict(): Promise<{ objects: number; bytes: number }> {
    evicting ??= evict().finally(() => {
      evicting = undefined;
    });
    return evicting;
  }

  /** Takes `bytes` into the claimed total, evicting first when they would not fit. */
  async function take(bytes: number): Promise<void> {
    if (fits(bytes)) {
      claimed += bytes;
      return;
    }
    // An eviction already running may free enough; a fresh one sees this claim's need through `claimed`.
    await evicting?.catch(() => undefined);
    if (!fits(bytes)) {
      claimed += bytes;
      try {
        await maybeEvict();
      } finally {
        claimed -= bytes;
      }
    }
    if (!fits(bytes)) {
      deps.metrics.storageErrors.inc({ operation: 'claim', code: 'full' });
      throw new OciError('UNAVAILABLE', `the cache has no room for ${bytes} more bytes under storage.maxBytes (${options.maxBytes}) while other downloads run; retry shortly`, {
        headers: { 'retry-after': String(STORAGE_FULL_RETRY_AFTER_SECONDS) },
      });
    }
    claimed += bytes;
  }

  return {
    maybeEvict,
    get claimedBytes() {
      return claimed;
    },
    async claim(initial) {
      let held = 0;
      const claim: SpaceClaim = {
        get bytes() {
          return held;
        },
        async grow(bytes) {
          if (bytes <= 0) return;
          // Unbounded: nothing to check, but the claim still grows, so a body is not asked about per chunk.
          if (isBounded) await take(bytes);
          held += bytes;
        },
        release() {
          if (isBounded) claimed -= held;
          held = 0;
        },
      };
      await claim.grow(initial);
      return claim;
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
