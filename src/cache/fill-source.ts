import type { BlobWriter } from '../storage/blob-writer.js';
import type { PositionalSource } from '../storage/send-bytes.js';

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

/**
 * A blob that is still being filled, read by offset as the temp file grows. Until the fill is
 * verified the blob's last byte is held back, so a body that fails verification is never
 * received as complete: the send fails instead, and the client sees a cut connection.
 */
export class FillSource implements PositionalSource {
  readonly #fill: FillProgress;
  #released = false;

  constructor(fill: FillProgress) {
    this.#fill = fill;
    fill.writer.retain();
  }

  async available(position: number): Promise<number> {
    for (;;) {
      const { state, writer, size, error } = this.#fill;
      if (state === 'failed') throw error ?? new Error('blob fill failed');
      const complete = state === 'verified' || state === 'committed';
      const limit = complete ? writer.written : Math.min(writer.written, (size ?? writer.written) - 1);
      if (position < limit) return limit - position;
      if (complete) return 0;
      await new Promise<void>((resolve) => this.#fill.onChange(resolve));
    }
  }

  read(buffer: Buffer, length: number, position: number): Promise<number> {
    return this.#fill.writer.readInto(buffer, length, position);
  }

  close(): void {
    if (!this.#released) {
      this.#released = true;
      this.#fill.writer.release();
    }
  }
}
