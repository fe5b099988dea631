import type { Writable } from 'node:stream';
import type { ReadLease } from './read-budget.js';

/** Bytes addressed by offset: a committed blob file, or a temp file still being filled. */
export interface PositionalSource {
  /**
   * Waits until bytes at `position` may be read and resolves to how many (at least one), or to 0
   * when the source ends before `position`. Rejects when the source failed.
   */
  available(position: number): Promise<number>;
  read(buffer: Buffer, length: number, position: number): Promise<number>;
  /**
   * The bytes at `position` (at most `length`) as views of chunks already in memory, when the
   * source holds them (a write being followed, at its end); undefined sends them through
   * {@link read}. Synchronous, so nothing changes between this and the send's write.
   */
  take?(position: number, length: number): Buffer[] | undefined;
  /** Gives the source up (closes what it holds); called once, by {@link sendBytes}. */
  close(): void;
}

export interface SendOptions {
  readonly start: number;
  /** One past the last byte to send; absent: to the source's end. */
  readonly end: number | undefined;
  /** Sizes the reads; released when the send ends. */
  readonly lease: ReadLease;
  /** Called with each chunk's length once it is handed to `dest`. */
  readonly onBytes?: (bytes: number) => void;
}

/**
 * Copies `[start, end)` of `source` into `dest` (without ending it) through two buffers used in
 * turn: one is read into while the other is being written; no buffer is allocated per chunk. A
 * fresh Buffer per read (what fs.ReadStream does) is external memory to V8, and at hundreds of
 * MiB/s it forces a full mark-compact every few dozen milliseconds, a cost that grows with the
 * server's heap: serving a cached blob took three times the CPU it takes now. A buffer is reused
 * only after `dest` reported its previous write done (the socket no longer holds it).
 * Bytes the source holds in memory ({@link PositionalSource.take}) are written as they are, in
 * place of a read; the two-writes-in-flight rule bounds what a slow `dest` keeps of them.
 */
export async function sendBytes(source: PositionalSource, dest: Writable, options: SendOptions): Promise<number> {
  const { lease, end } = options;
  // Pooled by the budget: a busy server reuses the same few buffers for request after request.
  const buffers: Buffer[] = [];
  const inFlight: Array<Promise<void> | undefined> = [undefined, undefined];
  const receiver = new ReceiverWatch(dest);
  let position = options.start;
  let sent = 0;
  try {
    // Past the budget's most senders, this one waits for a slot (or for its receiver to go).
    if (lease.ready) await receiver.guard(lease.ready);
    // Decided once: a crowd's sends use one buffer each (see ReadBudget.buffersFor).
    const turns = lease.buffers;
    for (let turn = 0; end === undefined || position < end; turn = (turn + 1) % turns) {
      const ready = await receiver.guard(source.available(position));
      if (ready === 0) break;
      // The buffer's previous chunk must be out of the socket's hands before it is overwritten.
      if (inFlight[turn]) await receiver.guard(inFlight[turn]!);
      const size = lease.chunkBytes;
      const length = Math.min(size, ready, end === undefined ? Infinity : end - position);
      const chunks = source.take?.(position, length);
      let bytesSent: number;
      if (chunks) {
        receiver.check();
        inFlight[turn] = writeChunks(dest, chunks);
        bytesSent = 0;
        for (const chunk of chunks) bytesSent += chunk.length;
      } else {
        // Taken at the first read: a follower that keeps pace with its write never needs one.
        if (buffers[turn]?.length !== size) {
          if (buffers[turn]) lease.give(buffers[turn]!);
          buffers[turn] = lease.take();
        }
        const buffer = buffers[turn]!;
        bytesSent = await source.read(buffer, length, position);
        if (bytesSent === 0) throw new Error(`the file ended at ${position} bytes, before its expected end`);
        receiver.check();
        inFlight[turn] = new Promise<void>((resolve, reject) => {
          dest.write(bytesSent === buffer.length ? buffer : buffer.subarray(0, bytesSent), (err) => (err ? reject(err) : resolve()));
        });
      }
      inFlight[turn]!.catch(() => undefined);
      position += bytesSent;
      sent += bytesSent;
      options.onBytes?.(bytesSent);
    }
    // Both buffers flushed: the caller may end the response, and a failed write surfaces here.
    await receiver.guard(Promise.all(inFlight));
    // Only now is no socket holding them (after a failure they are left to the collector).
    for (const buffer of buffers) if (buffer) lease.give(buffer);
    return sent;
  } finally {
    receiver.dispose();
    lease.release();
    source.close();
  }
}

/** Writes chunks in one go (a single writev on a socket); settles when the last is flushed. */
function writeChunks(dest: Writable, chunks: readonly Buffer[]): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const last = chunks.length - 1;
    if (last > 0) dest.cork();
    chunks.forEach((chunk, i) => dest.write(chunk, i === last ? (err) => (err ? reject(err) : resolve()) : undefined));
    if (last > 0) dest.uncork();
  });
}

const prematureClose = () => Object.assign(new Error('the receiver went away'), { code: 'ERR_STREAM_PREMATURE_CLOSE' });

/**
 * Makes each wait of a send also end when the receiver closes. One wait at a time holds the
 * rejection; racing every wait against one long-lived "closed" promise instead would hang a
 * reaction on it per chunk, kept until the send ends (promoted garbage, hundreds per blob).
 */
class ReceiverWatch {
  readonly #dest: Writable;
  readonly #onClose: () => void;
  #error: Error | undefined;
  #reject: ((err: Error) => void) | undefined;

  constructor(dest: Writable) {
    this.#dest = dest;
    this.#onClose = () => {
      this.#error = prematureClose();
      this.#reject?.(this.#error);
    };
    if (dest.destroyed) this.#error = prematureClose();
    else dest.once('close', this.#onClose);
  }

  /** Throws when the receiver has closed. */
  check(): void {
    if (this.#error || this.#dest.destroyed) throw this.#error ?? prematureClose();
  }

  guard<T>(work: Promise<T>): Promise<T> {
    if (this.#error) {
      work.catch(() => undefined);
      return Promise.reject(this.#error);
    }
    return new Promise<T>((resolve, reject) => {
      this.#reject = reject;
      work.then(resolve, reject);
    });
  }

  dispose(): void {
    this.#reject = undefined;
    this.#dest.off('close', this.#onClose);
  }
}
