/** A sender's share of the read budget, until it is released. */
export interface ReadLease {
  /** How big a read should be now; follows the number of senders. */
  readonly chunkBytes: number;
  /** A buffer of `chunkBytes`: a pooled one when free, else a new one. */
  take(): Buffer;
  /** Hands back a buffer nothing holds any more (its last write completed), for the next sender. */
  give(buffer: Buffer): void;
  /** Gives the share back; calling it again does nothing. */
  release(): void;
}

const KiB = 1024;

/**
 * Sizes the buffers blob senders read into by how many send at once, and keeps the buffers
 * senders are done with for the next ones. A lone client gets 1 MiB reads: each read and socket
 * write costs an event-loop turn and a thread-pool hop, and 1 MiB moved a cached blob with about
 * half the CPU of 256 KiB. Many clients share a fixed total (8 MiB; each sender holds two
 * buffers), so memory stays bounded however many pull at once, down to a floor of 64 KiB reads (a
 * 32 KiB floor cut 200 readers' RSS by ~10 MiB more, but their throughput by a third).
 * Pooling matters as much as sizing: a new buffer per request is external memory V8 collects
 * late, so a busy server's RSS would grow by tens of MiB of garbage.
 */
export class ReadBudget {
  readonly #totalBytes: number;
  readonly #maxChunk: number;
  readonly #minChunk: number;
  #open = 0;
  readonly #free = new Map<number, Buffer[]>();
  #freeBytes = 0;

  constructor(options: { totalBytes?: number; maxChunkBytes?: number; minChunkBytes?: number } = {}) {
    this.#totalBytes = options.totalBytes ?? 8 * 1024 * KiB;
    this.#maxChunk = options.maxChunkBytes ?? 1024 * KiB;
    this.#minChunk = options.minChunkBytes ?? 64 * KiB;
  }

  /** Senders holding a lease now. */
  get open(): number {
    return this.#open;
  }

  /** Bytes of buffers kept for reuse (never more than the budget's total). */
  get pooledBytes(): number {
    return this.#freeBytes;
  }

  /**
   * The read size for each of `open` senders with two buffers each: a power of two, so a sender
   * changes buffers only when the crowd doubles or halves, not at every client that comes or goes.
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
      take: () => this.#take(this.chunkBytesFor(this.#open)),
      give: (buffer) => this.#give(buffer),
      release: () => {
        if (released) return;
        released = true;
        this.#open -= 1;
      },
    };
  }

  #take(size: number): Buffer {
    const pooled = this.#free.get(size)?.pop();
    if (pooled) {
      this.#freeBytes -= size;
      return pooled;
    }
    return Buffer.allocUnsafeSlow(size);
  }

  #give(buffer: Buffer): void {
    // Full: buffers of a size nobody asks for now make room for the size senders use.
    for (const [size, list] of this.#free) {
      if (this.#freeBytes + buffer.length <= this.#totalBytes) break;
      if (size === buffer.length || buffer.length !== this.chunkBytesFor(this.#open)) continue;
      while (list.length > 0 && this.#freeBytes + buffer.length > this.#totalBytes) {
        list.pop();
        this.#freeBytes -= size;
      }
    }
    if (this.#freeBytes + buffer.length > this.#totalBytes) return;
    const list = this.#free.get(buffer.length) ?? [];
    list.push(buffer);
    this.#free.set(buffer.length, list);
    this.#freeBytes += buffer.length;
  }
}
