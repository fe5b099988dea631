import type { Hash } from 'node:crypto';
import type { FileHandle } from 'node:fs/promises';
import { Writable } from 'node:stream';
import { createDigester, parseDigest, type Digest } from '../oci/digest.js';
import type { ByteRange, TempFile } from './blob-store.js';
import type { CommitMeta, ContentSource, ContentWrite, VerifiedContent } from './content-store.js';
import { DigestMismatchError } from './digest-mismatch-error.js';
import type { ReadBudget } from './read-budget.js';
import { sendBytes, type PositionalSource } from './send-bytes.js';

/** Up to this many received bytes wait in memory while a disk write is in flight; past it the sink pushes back. */
const QUEUE_BYTES = 1024 * 1024;

/** What a write needs of its store: commit a synced temp file, open committed content, and its read budget. */
export interface WriteHost {
  readonly budget: ReadBudget;
  /** Renames the synced temp file into place and writes the index row: the commit point. */
  place(tempPath: string, content: VerifiedContent, meta: CommitMeta): Promise<void>;
  discard(tempPath: string): Promise<void>;
  open(digest: Digest, options: { range?: ByteRange | undefined; size?: number | undefined }): Promise<ContentSource>;
}

type State = 'writing' | 'verified' | 'committed' | 'failed';

/**
 * A temp file being filled, hashed as it arrives, and followed by any number of readers while it
 * grows. Received chunks stay in memory from their arrival until their disk write lands (at most
 * about two {@link QUEUE_BYTES}: the batch on its way to disk and the chunks queued behind it), and
 * a follower at that point is handed them as they are: a client keeping pace with the upstream is
 * never sent bytes read back from the file. A follower further behind reads the file through the
 * shared descriptor, which survives the rename and is closed once the write is finished and every
 * follower let go of it. Until {@link verify} passed, every follower is held one byte short of the
 * end, so a body that fails verification is never received as complete.
 */
export class FileContentWrite implements ContentWrite {
  readonly sink: Writable;
  readonly #host: WriteHost;
  readonly #temp: TempFile;
  readonly #handle: FileHandle;
  readonly #digester: Hash;
  readonly #expected: Digest | undefined;
  readonly #algorithm: Digest['algorithm'];
  readonly #size: number | undefined;
  #verified: VerifiedContent | undefined;
  #state: State = 'writing';
  #error: Error | undefined;
  /** Bytes hashed and accepted by the sink. */
  #received = 0;
  /** Bytes on disk: [0, #written) is readable from the file, [#written, #received) from memory. */
  #written = 0;
  /** The batch whose disk write is in flight, then the chunks queued behind it. */
  #landing: Buffer[] = [];
  #queued: Buffer[] = [];
  #queuedBytes = 0;
  #isFlushing = false;
  #resume: (() => void) | undefined;
  #finish: ((err?: Error | null) => void) | undefined;
  #refs = 1;
  #listeners: Array<() => void> = [];

  constructor(host: WriteHost, temp: TempFile, expected: Digest | Pick<Digest, 'algorithm'>, size: number | undefined) {
    this.#host = host;
    this.#temp = temp;
    this.#handle = temp.handle;
    this.#expected = 'value' in expected ? (expected as Digest) : undefined;
    this.#algorithm = expected.algorithm;
    this.#digester = createDigester(expected.algorithm);
    this.#size = size;
    this.sink = new Writable({
      // Small: the sink queues chunks itself (where followers can see them), not in the stream.
      highWaterMark: 16 * 1024,
      write: (chunk: Buffer, _encoding, callback) => this.#accept(chunk, callback),
      final: (callback) => {
        if (this.#isFlushing) this.#finish = callback;
        else callback();
      },
    });
  }

  get written(): number {
    return this.#received;
  }

  #accept(chunk: Buffer, callback: (err?: Error | null) => void): void {
    if (this.#state !== 'writing') return callback(this.#error ?? new Error('the write is finished'));
    if (this.#size !== undefined && this.#received + chunk.length > this.#size) {
      const digest = this.#expected?.value ?? 'content';
      return callback(new DigestMismatchError(digest, 'unknown', `size mismatch for ${digest}: the source sent more than its expected ${this.#size} bytes`));
    }
    this.#digester.update(chunk);
    this.#received += chunk.length;
    this.#queued.push(chunk);
    this.#queuedBytes += chunk.length;
    this.#notify();
    if (!this.#isFlushing) void this.#flush();
    if (this.#queuedBytes < QUEUE_BYTES) callback();
    else this.#resume = () => callback();
  }

  /** Writes queued chunks to disk, one batch per call, until none are left. */
  async #flush(): Promise<void> {
    this.#isFlushing = true;
    try {
      while (this.#queued.length > 0) {
        this.#landing = this.#queued;
        this.#queued = [];
        this.#queuedBytes = 0;
        const resume = this.#resume;
        this.#resume = undefined;
        resume?.();
        let bytes = 0;
        for (const chunk of this.#landing) bytes += chunk.length;
        await this.#writeAll(this.#landing, this.#written);
        this.#written += bytes;
        this.#landing = [];
        this.#notify();
      }
    } catch (err) {
      // Destroyed, the sink fails its pipeline; a pending write or final callback is moot.
      this.#landing = [];
      this.#queued = [];
      this.#finish = undefined;
      this.sink.destroy(err as Error);
      return;
    } finally {
      this.#isFlushing = false;
    }
    const finish = this.#finish;
    this.#finish = undefined;
    finish?.();
  }

  /** A short write is legal (a nearly full disk): write the rest, which then fails with the real error (ENOSPC). */
  async #writeAll(chunks: Buffer[], position: number): Promise<void> {
    let pending = chunks;
    while (pending.length > 0) {
      const { bytesWritten } = await this.#handle.writev(pending, position);
      position += bytesWritten;
      let skip = bytesWritten;
      const rest: Buffer[] = [];
      for (const chunk of pending) {
        if (skip >= chunk.length) skip -= chunk.length;
        else {
          rest.push(skip > 0 ? chunk.subarray(skip) : chunk);
          skip = 0;
        }
      }
      if (bytesWritten === 0 && rest.length > 0) throw Object.assign(new Error('the disk accepted no more bytes'), { code: 'ENOSPC' });
      pending = rest;
    }
  }

  verify(): VerifiedContent {
    if (this.#verified) return this.#verified;
    if (this.#state !== 'writing') throw this.#error ?? new Error(`the write is ${this.#state}`);
    if (this.#isFlushing || this.#queued.length > 0 || !this.sink.writableFinished) throw new Error('verify() before the sink finished');
    const actual = `${this.#algorithm}:${this.#digester.digest('hex')}`;
    const expected = this.#expected?.value ?? actual;
    if (this.#size !== undefined && this.#size !== this.#received) {
      throw new DigestMismatchError(expected, actual, `size mismatch for ${expected}: expected ${this.#size} bytes, got ${this.#received}`);
    }
    if (actual !== expected) throw new DigestMismatchError(expected, actual);
    this.#verified = { digest: this.#expected ?? parseDigest(actual), size: this.#received };
    // Followers get their last byte now, while the file is made durable.
    this.#state = 'verified';
    this.#notify();
    return this.#verified;
  }

  async commit(meta: CommitMeta): Promise<void> {
    const verified = this.#verified;
    if (!verified || this.#state !== 'verified') throw new Error('commit() of a write that is not verified');
    await this.#handle.sync();
    await this.#host.place(this.#temp.path, verified, meta);
    this.#state = 'committed';
    this.#notify();
    this.#release();
  }

  async abort(reason?: Error): Promise<void> {
    if (this.#state === 'committed' || this.#state === 'failed') return;
    this.#state = 'failed';
    this.#error = reason ?? new Error('the write was aborted');
    // The sink may still be in a pipeline: it must fail too, or its source would wait forever.
    this.sink.destroy(this.#error);
    this.#notify();
    this.#release();
    await this.#host.discard(this.#temp.path);
  }

  /**
   * Fsyncs the verified file and gives the descriptor up, leaving the file in its staging
   * directory (import stages a whole bundle before committing any of it).
   */
  async stage(): Promise<{ readonly tempPath: string } & VerifiedContent> {
    const verified = this.#verified;
    if (!verified || this.#state !== 'verified') throw new Error('stage() of a write that is not verified');
    await this.#handle.sync();
    this.#state = 'committed';
    this.#release();
    return { tempPath: this.#temp.path, ...verified };
  }

  follow(range?: ByteRange): ContentSource {
    const start = range?.start ?? 0;
    const end = range ? range.end + 1 : undefined;
    const size = range ? range.end - range.start + 1 : this.#size;
    if (this.#state === 'failed') return failedSource(size, this.#error!);
    // Committed and let go of: send the committed file.
    if (this.#refs === 0) {
      const digest = this.#verified!.digest;
      return { size, send: async (dest, options) => (await this.#host.open(digest, { range, size: this.#received })).send(dest, options) };
    }
    this.#refs += 1;
    let isClosed = false;
    const source: PositionalSource = {
      available: (position) => this.#available(position),
      // Only what landed: the rest of what is available is in memory, and take() hands it over.
      read: async (buffer, length, position) => (await this.#handle.read(buffer, 0, Math.min(length, this.#written - position), position)).bytesRead,
      take: (position, length) => this.#take(position, length),
      close: () => {
        if (isClosed) return;
        isClosed = true;
        this.#release();
      },
    };
    return {
      size,
      send: (dest, options = {}) => sendBytes(source, dest, { start, end, lease: this.#host.budget.acquire(), ...(options.onBytes ? { onBytes: options.onBytes } : {}) }),
    };
  }

  async #available(position: number): Promise<number> {
    for (;;) {
      if (this.#state === 'failed') throw this.#error;
      const isComplete = this.#state !== 'writing';
      // Held back until verified: the last byte (of a known size), or the last byte received so far.
      const limit = isComplete ? this.#received : Math.min(this.#received, (this.#size ?? this.#received) - 1);
      if (position < limit) return limit - position;
      if (isComplete) return 0;
      await new Promise<void>((resolve) => this.#listeners.push(resolve));
    }
  }

  /** Views of the chunks at [position, position + length) while they are in memory, else undefined. */
  #take(position: number, length: number): Buffer[] | undefined {
    if (position < this.#written || position + length > this.#received) return undefined;
    const chunks: Buffer[] = [];
    let offset = this.#written;
    let wanted = length;
    for (const list of [this.#landing, this.#queued]) {
      for (const chunk of list) {
        if (wanted === 0) return chunks;
        const chunkEnd = offset + chunk.length;
        if (chunkEnd > position) {
          const from = Math.max(0, position - offset);
          const to = Math.min(chunk.length, from + wanted);
          chunks.push(from === 0 && to === chunk.length ? chunk : chunk.subarray(from, to));
          wanted -= to - from;
        }
        offset = chunkEnd;
      }
    }
    return wanted === 0 ? chunks : undefined;
  }

  #notify(): void {
    const listeners = this.#listeners;
    this.#listeners = [];
    for (const listener of listeners) listener();
  }

  #release(): void {
    this.#refs -= 1;
    if (this.#refs === 0) this.#handle.close().catch(() => undefined);
  }
}

function failedSource(size: number | undefined, error: Error): ContentSource {
  return { size, send: () => Promise.reject(error) };
}
