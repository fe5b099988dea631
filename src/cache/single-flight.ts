/**
 * One promise per key while it runs: concurrent callers with the same key share the first
 * caller's work and its outcome (value or error). Nothing is kept once it settles.
 */
export class SingleFlight<V> {
  readonly #running = new Map<string, Promise<V>>();

  /** Runs `work` unless a call with `key` is running; `joined` says which happened. */
  run(key: string, work: () => Promise<V>): { promise: Promise<V>; joined: boolean } {
    const existing = this.#running.get(key);
    if (existing) return { promise: existing, joined: true };
    const promise = work().finally(() => this.#running.delete(key));
    this.#running.set(key, promise);
    return { promise, joined: false };
  }
}
