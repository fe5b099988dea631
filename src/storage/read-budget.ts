/** A sender's share of the read budget, until it is released. */
export interface ReadLease {
  /**
   * Pending while the budget already has its most senders: the sender waits for it before its
   * first take (or gives up by releasing). Undefined when the lease was admitted at once.
   */
  readonly ready: Promise<void> | undefined;
  /** How big a read should be now; follows the number of senders. */
  readonly chunkBytes: number;
  /** How many buffers a send should use in turn now: two while few send, one in a crowd. */
  readonly buffers: 1 | 2;
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
 *
 * The floor makes the total a target, not a bound: past 64 senders at 64 KiB, each new one would
 * allocate another 128 KiB. So at most `maxSenders` (256 by default, 32 MiB at the floor) hold a
 * lease at once; the next ones wait, first come first served, until one is done. With the pool
 * (at most `totalBytes`), buffers never take more than `totalBytes + maxSenders × 2 × floor`
 * however many clients pull, and a sender whose client stopped reading is dropped by the HTTP
 * layer's idle-send timeout, so waiting senders do not wait on it for long.
 */
export class ReadBudget {
  readonly #totalBytes: number;
  readonly #maxChunk: number;
  readonly #minChunk: number;
  readonly #maxSenders: number;
  #open = 0;
  readonly #waiting: Array<() => void> = [];
  readonly #free = new Map<number, Buffer[]>();
  #freeBytes = 0;
  #heldBytes = 0;

  constructor(options: { totalBytes?: number; maxChunkBytes?: number; minChunkBytes?: number; maxSenders?: number } = {}) {
    this.#totalBytes = options.totalBytes ?? 8 * 1024 * KiB;
    this.#maxChunk = options.maxChunkBytes ?? 1024 * KiB;
    this.#minChunk = options.minChunkBytes ?? 64 * KiB;
    this.#maxSenders = Math.max(1, options.maxSenders ?? 256);
  }

  /** Senders holding an admitted lease now (never more than `maxSenders`). */
  get open(): number {
    return this.#open;
  }

  /** Senders waiting to be admitted. */
  get waiting(): number {
    return this.#waiting.length;
  }

  /** Bytes of buffers senders have taken and not given back (released leases count as given). */
  get heldBytes(): number {
    return this.#heldBytes;
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

  /**
   * Two buffers per sender (one read into while the other is written) until the crowd has
   * brought reads down to the floor; past that every sender reads into one. A crowd that large
   * keeps the CPU busy whatever each sender overlaps, and the second buffer only doubled what
   * the floor lets memory grow by (200 clients: 25 MiB of buffers, now 12.5).
   */
  buffersFor(open: number): 1 | 2 {
    return open * 2 * this.#minChunk <= this.#totalBytes ? 2 : 1;
  }

  /** A share of the budget, admitted at once while fewer than `maxSenders` hold one, else when one is released. */
  acquire(): ReadLease {
    let released = false;
    let admitted = this.#open < this.#maxSenders;
    let held = 0;
    let admit: (() => void) | undefined;
    let ready: Promise<void> | undefined;
    if (admitted) this.#open += 1;
    else {
      ready = new Promise<void>((resolve) => {
        admit = () => {
          admitted = true;
          resolve();
        };
      });
      this.#waiting.push(admit!);
    }
    const budget = this;
    return {
      get ready() {
        return admitted ? undefined : ready;
      },
      get chunkBytes() {
        return budget.chunkBytesFor(budget.#open);
      },
      get buffers() {
        return budget.buffersFor(budget.#open);
      },
      take: () => {
        const buffer = this.#take(this.chunkBytesFor(this.#open));
        held += buffer.length;
        this.#heldBytes += buffer.length;
        return buffer;
      },
      give: (buffer) => {
        held -= buffer.length;
        this.#heldBytes -= buffer.length;
        this.#give(buffer);
      },
      release: () => {
        if (released) return;
        released = true;
        // Buffers not given back (a failed send) are the collector's; they no longer count here.
        this.#heldBytes -= held;
        held = 0;
        if (!admitted) {
          this.#waiting.splice(this.#waiting.indexOf(admit!), 1);
          return;
        }
        const next = this.#waiting.shift();
        // The slot passes straight to the next waiter: `open` stays as it is.
        if (next) next();
        else this.#open -= 1;
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
