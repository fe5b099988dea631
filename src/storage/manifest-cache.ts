import { LRUCache } from 'lru-cache';

/** A manifest held in memory. */
export interface CachedManifest {
  readonly digest: string;
  readonly mediaType: string;
  readonly bytes: Buffer;
}

/** Hot manifests by digest, bounded in bytes; see {@link createManifestCache}. */
export interface ManifestCache {
  get(digest: string): CachedManifest | undefined;
  set(manifest: CachedManifest): void;
  delete(digest: string): void;
}

/**
 * An LRU of manifest bytes by digest. Digests are immutable, so entries never go stale;
 * they only make room for hotter ones.
 */
export function createManifestCache(options: { maxBytes: number }): ManifestCache {
  const lru = new LRUCache<string, CachedManifest>({
    maxSize: Math.max(1, options.maxBytes),
    sizeCalculation: (manifest) => Math.max(1, manifest.bytes.length),
  });
  return {
    get: (digest) => lru.get(digest),
    set(manifest) {
      if (manifest.bytes.length <= options.maxBytes) lru.set(manifest.digest, manifest);
    },
    delete: (digest) => void lru.delete(digest),
  };
}
