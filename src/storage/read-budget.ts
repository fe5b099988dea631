/** A sender's share of the read budget, until it is released. */
export interface ReadLease {
  /** How big a read should be now; follows the number of senders. */
  readonly chunkBytes: number;
  /** Gives the share back; calling it again does nothing. */
  release(): void;
}

const KiB = 1024;

/**
 * Sizes the buffers blob senders read into by how many send at once. A lone client gets 1 MiB
 * reads: each read and socket write costs an event-loop turn and a thread-pool hop, and 1 MiB
 * moved a cached blob with about half the CPU of 256 KiB. Many clients share a fixed total
 * instead (each sender holds two buffers), so memory stays bounded however many pull at once,
 * down to a floor of 64 KiB reads.
 */
export class ReadBudget {
  readonly #totalBytes: number;
  readonly #maxChunk: number;
  readonly #minChunk: number;
  #open = 0;

  constructor(options: { totalBytes?: number; maxChunkBytes?: number; minChunkBytes?: number } = {}) {
    this.#totalBytes = options.totalBytes ?? 16 * 1024 * KiB;
    this.#maxChunk = options.maxChunkBytes ?? 1024 * KiB;
    this.#minChunk = options.minChunkBytes ?? 64 * KiB;
  }

  /** Senders holding a lease now. */
  get open(): number {
    return this.#open;
  }

  /**
   * The read size for each of `open` senders with two buffers each: a power of two, so a sender
   * reallocates only when the crowd doubles or halves, not at every client that comes or goes.
   */
  chunkBytesFor(open: number): number {
    const share = this.#totalBytes / (2 * Math.max(1, open));
    let chunk = this.#minChunk;
    while (chunk * 2 <= share && chunk * 2 <= this.#maxChunk) chunk *= 2;
    return chunk;
  }

  acquire(): ReadLease {
    this.#open += 1;
    let released = false;
    const budget = this;
    return {
      get chunkBytes() {
        return budget.chunkBytesFor(budget.#open);
      },
      release: () => {
        if (released) return;
        released = true;
        this.#open -= 1;
      },
    };
  }
}
