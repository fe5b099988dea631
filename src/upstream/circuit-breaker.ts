/** Where a breaker stands: `closed` passes requests, `open` refuses them, `half-open` lets one probe through. */
export type BreakerState = 'closed' | 'open' | 'half-open';

/**
 * Counts consecutive upstream failures. After `failures` in a row the upstream is left alone for
 * `openForMs`: requests are refused at once, so clients (containerd waits up to 30 s per request)
 * get an answer now and fall back or use the cache. Then one probe request goes through; its
 * success closes the breaker, its failure opens it again.
 */
export class CircuitBreaker {
  readonly #threshold: number;
  readonly #openForMs: number;
  readonly #now: () => number;
  readonly #onChange: (state: BreakerState) => void;
  #consecutiveFailures = 0;
  #openedAt: number | undefined;
  #isProbing = false;

  constructor(options: { failures: number; openForMs: number }, deps: { now: () => number; onChange: (state: BreakerState) => void }) {
    this.#threshold = options.failures;
    this.#openForMs = options.openForMs;
    this.#now = deps.now;
    this.#onChange = deps.onChange;
  }

  get state(): BreakerState {
    if (this.#openedAt === undefined) return 'closed';
    return this.#now() - this.#openedAt >= this.#openForMs ? 'half-open' : 'open';
  }

  /** Milliseconds until the next probe may go, while open. */
  get retryInMs(): number {
    return this.#openedAt === undefined ? 0 : Math.max(0, this.#openedAt + this.#openForMs - this.#now());
  }

  /** Whether a request may go now; in half-open, true for exactly one caller until it reports back. */
  tryAcquire(): boolean {
    const state = this.state;
    if (state === 'closed') return true;
    if (state === 'open' || this.#isProbing) return false;
    this.#isProbing = true;
    return true;
  }

  recordSuccess(): void {
    const wasOpen = this.#openedAt !== undefined;
    this.#consecutiveFailures = 0;
    this.#openedAt = undefined;
    this.#isProbing = false;
    if (wasOpen) this.#onChange('closed');
  }

  /** A request we gave up on ourselves says nothing about the upstream: free the probe slot only. */
  recordAbandoned(): void {
    this.#isProbing = false;
  }

  recordFailure(): void {
    this.#consecutiveFailures += 1;
    const wasProbe = this.#isProbing;
    this.#isProbing = false;
    if (wasProbe || (this.#openedAt === undefined && this.#consecutiveFailures >= this.#threshold)) {
      this.#openedAt = this.#now();
      this.#onChange('open');
    }
  }
}
