import { LRUCache } from 'lru-cache';

/**
 * Remembers upstream 404s for tags for a few seconds, so that a storm of pods asking for a tag
 * that does not exist (a typo in a Deployment, a tag not pushed yet) costs the upstream one
 * request, not hundreds. Bounded: the least recently used entries go first.
 */
export class NotFoundCache {
  // Expiry kept as the value and checked against the injected clock: lru-cache's own TTL reads
  // performance.now() (and treats a start time of 0 as no TTL), which tests cannot step.
  readonly #expiresAt: LRUCache<string, number>;
  readonly #now: () => number;

  constructor(now: () => number, maxEntries = 10_000) {
    this.#now = now;
    this.#expiresAt = new LRUCache({ max: maxEntries });
  }

  has(key: string): boolean {
    const expiresAt = this.#expiresAt.get(key);
    if (expiresAt === undefined) return false;
    if (expiresAt > this.#now()) return true;
    this.#expiresAt.delete(key);
    return false;
  }

  add(key: string, ttlMs: number): void {
    if (ttlMs > 0) this.#expiresAt.set(key, this.#now() + ttlMs);
  }
}
