/**
 * Remembers upstream 404s for tags for a few seconds, so that a storm of pods asking for a tag
 * that does not exist (a typo in a Deployment, a tag not pushed yet) costs the upstream one
 * request, not hundreds. Bounded: the oldest entries go first.
 */
export class NotFoundCache {
  readonly #expiresAt = new Map<string, number>();
  readonly #now: () => number;
  readonly #maxEntries: number;

  constructor(now: () => number, maxEntries = 10_000) {
    this.#now = now;
    this.#maxEntries = maxEntries;
  }

  has(key: string): boolean {
    const expiresAt = this.#expiresAt.get(key);
    if (expiresAt === undefined) return false;
    if (expiresAt > this.#now()) return true;
    this.#expiresAt.delete(key);
    return false;
  }

  add(key: string, ttlMs: number): void {
    if (ttlMs <= 0) return;
    this.#expiresAt.delete(key);
    if (this.#expiresAt.size >= this.#maxEntries) {
      const oldest = this.#expiresAt.keys().next().value;
      if (oldest !== undefined) this.#expiresAt.delete(oldest);
    }
    this.#expiresAt.set(key, this.#now() + ttlMs);
  }

  delete(key: string): void {
    this.#expiresAt.delete(key);
  }
}
