import type { Hash } from 'node:crypto';
import { Writable } from 'node:stream';
import { createDigester, type Digest } from '../oci/digest.js';
import type { BlobStore, TempFile } from './blob-store.js';
import { DigestMismatchError } from './digest-mismatch-error.js';

/**
 * A temp file being filled, hashed as it is written, and readable at any offset below
 * {@link written} while it grows (readers share its descriptor, which survives the rename).
 * The descriptor is closed when the writer is finished and every reader has released it.
 */
export class BlobWriter extends Writable {
  readonly #store: BlobStore;
  readonly #temp: TempFile;
  readonly #digester: Hash;
  readonly #algorithm: Digest['algorithm'];
  #digest: string | undefined;
  readonly #onProgress: () => void;
  #written = 0;
  #refs = 1;
  #closed = false;

  private constructor(store: BlobStore, temp: TempFile, digest: Pick<Digest, 'algorithm'>, onProgress: () => void) {
    // Up to 1 MiB of upstream chunks may queue while a write is in flight; they are written together.
    super({ highWaterMark: 1024 * 1024 });
    this.#store = store;
    this.#temp = temp;
    this.#digester = createDigester(digest.algorithm);
    this.#algorithm = digest.algorithm;
    this.#onProgress = onProgress;
  }

  /**
   * Opens a temp file (in `dir`, a staging directory, when given) for content expected to hash to
   * `digest`; `onProgress` runs after each write lands.
   */
  static async create(store: BlobStore, digest: Pick<Digest, 'algorithm'>, onProgress: () => void = () => undefined, dir?: string): Promise<BlobWriter> {
    return new BlobWriter(store, await store.createTempFile(dir), digest, onProgress);
  }

  /** Bytes on disk so far: a reader may read below this offset. */
  get written(): number {
    return this.#written;
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.#append([chunk], callback);
  }

  /** Chunks that queued up while a write was in flight go to disk in one call. */
  override _writev(chunks: Array<{ chunk: Buffer }>, callback: (error?: Error | null) => void): void {
    this.#append(
      chunks.map((c) => c.chunk),
      callback,
    );
  }

  #append(chunks: Buffer[], callback: (error?: Error | null) => void): void {
    this.#writeAll(chunks).then(
      () => {
        for (const chunk of chunks) {
          this.#digester.update(chunk);
          this.#written += chunk.length;
        }
        this.#onProgress();
        callback();
      },
      (err: Error) => callback(err),
    );
  }

  /** A short write is legal (a nearly full disk): write the rest, which then fails with the real error (ENOSPC). */
  async #writeAll(chunks: Buffer[]): Promise<void> {
    let position = this.#written;
    let pending = chunks;
    while (pending.length > 0) {
      const { bytesWritten } = await this.#temp.handle.writev(pending, position);
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

  /** Reads up to `length` bytes at `position` from the file as written so far into `buffer`. */
  async readInto(buffer: Buffer, length: number, position: number): Promise<number> {
    return (await this.#temp.handle.read(buffer, 0, length, position)).bytesRead;
  }

  /**
   * Ends writing: the digest of everything written (in the algorithm given at creation) and its
   * size, with the file fsynced. Call once.
   */
  async seal(): Promise<{ digest: string; size: number }> {
    const digest = this.#finalDigest();
    await this.#temp.handle.sync();
    return { digest, size: this.#written };
  }

  #finalDigest(): string {
    this.#digest ??= `${this.#algorithm}:${this.#digester.digest('hex')}`;
    return this.#digest;
  }

  /**
   * Checks size and digest of what was written, without touching the disk: the fill's clients may
   * have their last byte as soon as this passes, while the file is made durable.
   * @throws DigestMismatchError when the content is not `digest`; the caller discards the file
   * (a fill first stops being joinable, so nobody joins a file on its way out).
   */
  check(digest: Digest, expectedSize: number | undefined): number {
    const actual = this.#finalDigest();
    if (expectedSize !== undefined && expectedSize !== this.#written) {
      throw new DigestMismatchError(digest.value, actual, `size mismatch for ${digest.value}: expected ${expectedSize} bytes, got ${this.#written}`);
    }
    if (actual !== digest.value) throw new DigestMismatchError(digest.value, actual);
    return this.#written;
  }

  /** After {@link check}: fsyncs and renames the file into place, the commit point. */
  async persist(digest: Digest): Promise<void> {
    await this.#store.commit(this.#temp, digest);
  }

  /** The temp file's path, for callers that commit it later ({@link BlobStore.adopt}). */
  get tempPath(): string {
    return this.#temp.path;
  }

  /**
   * Checks size and digest and fsyncs the file, leaving it in tmp/.
   * @throws DigestMismatchError (after discarding the file) when the content is not `digest`.
   */
  async verify(digest: Digest, expectedSize: number | undefined): Promise<number> {
    let size: number;
    try {
      size = this.check(digest, expectedSize);
    } catch (err) {
      await this.discard();
      throw err;
    }
    await this.#temp.handle.sync();
    return size;
  }

  /** Removes the temp file; readers holding the descriptor must stop on their own. */
  async discard(): Promise<void> {
    await this.#store.discard(this.#temp.path);
  }

  /** Another reader shares the descriptor until it calls {@link release}. */
  retain(): void {
    this.#refs += 1;
  }

  release(): void {
    this.#refs -= 1;
    if (this.#refs === 0 && !this.#closed) {
      this.#closed = true;
      this.#temp.handle.close().catch(() => undefined);
    }
  }
}
