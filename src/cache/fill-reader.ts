import { Readable } from 'node:stream';
import type { BlobWriter } from '../storage/blob-writer.js';

/** What a reader needs to know of the fill it follows. */
export interface FillProgress {
  readonly writer: BlobWriter;
  /** Expected total size, when the upstream sent Content-Length. */
  readonly size: number | undefined;
  /** `verified`: every byte is on disk and matches the digest; the file is being made durable. */
  readonly state: 'filling' | 'verified' | 'committed' | 'failed';
  readonly error: Error | undefined;
  /** Calls `listener` once, at the next write, commit or failure. */
  onChange(listener: () => void): void;
}

const CHUNK_BYTES = 256 * 1024;

/**
 * Streams `[start, end]` of a blob that is still being filled, following the temp file as it
 * grows. Until the fill is verified and committed the blob's last byte is held back, so a
 * body that fails verification is never received as complete: the reader is destroyed instead.
 */
export class FillReader extends Readable {
  readonly #fill: FillProgress;
  readonly #end: number | undefined;
  #position: number;
  #pumping = false;
  #released = false;

  constructor(fill: FillProgress, range?: { start: number; end: number }) {
    super({ highWaterMark: CHUNK_BYTES });
    this.#fill = fill;
    this.#position = range?.start ?? 0;
    this.#end = range ? range.end + 1 : undefined;
    fill.writer.retain();
  }

  override _read(): void {
    void this.#pump();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.#release();
    callback(error);
  }

  #release(): void {
    if (!this.#released) {
      this.#released = true;
      this.#fill.writer.release();
    }
  }

  /** The offset below which bytes may be sent now. */
  #limit(): number {
    const { writer, size, state } = this.#fill;
    const end = this.#end ?? Infinity;
    if (state === 'verified' || state === 'committed') return Math.min(writer.written, end);
    const holdBack = Math.min(writer.written, (size ?? writer.written) - 1);
    return Math.min(holdBack, end);
  }

  async #pump(): Promise<void> {
    if (this.#pumping || this.destroyed) return;
    this.#pumping = true;
    try {
      for (;;) {
        if (this.destroyed) return;
        const { state, writer } = this.#fill;
        if (state === 'failed') {
          this.destroy(this.#fill.error ?? new Error('blob fill failed'));
          return;
        }
        const limit = this.#limit();
        const finished = (state === 'verified' || state === 'committed') && this.#position >= Math.min(writer.written, this.#end ?? Infinity);
        if (finished || (this.#end !== undefined && this.#position >= this.#end)) {
          this.push(null);
          this.#release();
          return;
        }
        if (this.#position < limit) {
          const chunk = await writer.read(this.#position, Math.min(CHUNK_BYTES, limit - this.#position));
          if (this.destroyed) return;
          this.#position += chunk.length;
          if (!this.push(chunk)) return;
          continue;
        }
        await new Promise<void>((resolve) => this.#fill.onChange(resolve));
      }
    } catch (err) {
      this.destroy(err as Error);
    } finally {
      this.#pumping = false;
    }
  }
}
