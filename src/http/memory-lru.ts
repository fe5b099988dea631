import { LRUCache } from 'lru-cache';

/** A string-keyed map in memory, bounded by the bytes its entries are counted at; see {@link createMemoryLru}. */
export interface MemoryLru<V> {
  /** The entry, which counts as used (it moves to the back of the eviction line). */
  get(key: string): V | undefined;
  /** Stores the entry, evicting the least recently used ones to make room; one larger than the bound is not stored. */
  set(key: string, value: V): void;
  delete(key: string): void;
  readonly size: number;
  /** The sum of the stored entries' counted bytes, never more than `maxBytes`. */
  readonly sizeBytes: number;
}

/**
 * A least-recently-used map bounded in bytes, for the HTTP layer's per-client state (token
 * sessions, rate-limit buckets). `sizeOf` estimates what an entry holds (its strings and the
 * map's own overhead); a flood of entries evicts the coldest.
 */
export function createMemoryLru<V extends object>(options: { maxBytes: number; sizeOf: (value: V, key: string) => number }): MemoryLru<V> {
  const lru = new LRUCache<string, V>({
    maxSize: Math.max(1, options.maxBytes),
    sizeCalculation: (value, key) => Math.max(1, Math.ceil(options.sizeOf(value, key))),
  });
  return {
    get: (key) => lru.get(key),
    set(key, value) {
      if (options.sizeOf(value, key) <= options.maxBytes) lru.set(key, value);
    },
    delete: (key) => void lru.delete(key),
    get size() {
      return lru.size;
    },
    get sizeBytes() {
      return lru.calculatedSize;
    },
  };
}
