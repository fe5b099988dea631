import { createReadStream, type ReadStream } from 'node:fs';
import { mkdir, open, readdir, readFile, rename, rm, stat, type FileHandle } from 'node:fs/promises';
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import type { Digest } from '../oci/digest.js';

/** A file being written under `tmp/`, moved into place by {@link BlobStore.adopt}. */
export interface TempFile {
  readonly path: string;
  readonly handle: FileHandle;
}

/** A byte range, both ends inclusive (RFC 9110 §14.1.1). */
export interface ByteRange {
  readonly start: number;
  readonly end: number;
}

/**
 * Content-addressed files under `root`: `blobs/<algorithm>/<first two hex>/<hex>` for committed
 * content and `tmp/` for fills in progress. Paths come only from validated digests, so no input
 * can name a file outside `root`. Manifests and blobs share the tree, as in distribution.
 * Files only: content is sent, written and committed (file and index row) through the
 * ContentStore (content-store.ts) built over this; the keeper, reconciliation and the CLI list,
 * check and remove files here.
 */
export interface BlobStore {
  readonly root: string;
  /**
   * Creates `blobs/` and `tmp/`. With `purgeTemp` (the server at start-up) it also removes whatever
   * a previous process left in `tmp/`; tools that may run beside a server must not.
   */
  init(options?: { purgeTemp: boolean }): Promise<void>;
  /** The committed file's size, or undefined when it is not on disk. */
  size(digest: Digest): Promise<number | undefined>;
  /** Streams committed content (or a range of it), for reads off the response path (verify); the caller owns and must consume or destroy the stream. */
  createReadStream(digest: Digest, range?: ByteRange): ReadStream;
  readAll(digest: Digest): Promise<Buffer>;
  /** Opens committed content for positional reads (ContentStore.open sends through it); rejects with ENOENT when it is not on disk. */
  openRead(digest: Digest): Promise<FileHandle>;
  /**
   * Opens a new temp file for writing; the caller closes it and either commits or discards it.
   * In `dir` (from {@link createStagingDir}) it is out of garbage collection's reach.
   */
  createTempFile(dir?: string): Promise<TempFile>;
  /**
   * A fresh directory under tmp/ for files staged longer than a fill may run (an import): garbage
   * collection removes dead temp files, never directories; a server start purges tmp/ whole.
   */
  createStagingDir(): Promise<string>;
  /** Renames an already verified and synced temp file into the digest's place (no index row: see ContentStore). */
  adopt(tempPath: string, digest: Digest): Promise<void>;
  /** Writes a whole small buffer through a synced temp file into the digest's place (no index row: see ContentStore). */
  writeAll(digest: Digest, bytes: Uint8Array): Promise<void>;
  discard(tempPath: string): Promise<void>;
  remove(digest: Digest): Promise<void>;
  /** Every committed digest found on disk, as `algorithm:hex`, with its size and modification time. */
  list(): AsyncIterable<{ digest: string; size: number; mtimeMs: number }>;
  /** Files in tmp/ with their modification time. */
  listTemp(): Promise<Array<{ path: string; mtimeMs: number }>>;
  /** Writes, syncs and removes a probe file in `tmp/`; rejects when the disk cannot take a fill. */
  probeWritable(): Promise<void>;
}

export function createBlobStore(options: { root: string }): BlobStore {
  const root = path.resolve(options.root);
  const blobsDir = path.join(root, 'blobs');
  const tmpDir = path.join(root, 'tmp');
  const pathFor = (digest: Digest) => path.join(blobsDir, digest.algorithm, digest.hex.slice(0, 2), digest.hex);

  const store: BlobStore = {
    root,
    async init({ purgeTemp } = { purgeTemp: true }) {
      await mkdir(blobsDir, { recursive: true });
      // A fill that was running when the process died can never be finished: start clean.
      if (purgeTemp) await rm(tmpDir, { recursive: true, force: true });
      await mkdir(tmpDir, { recursive: true });
    },
    async size(digest) {
      try {
        return (await stat(pathFor(digest))).size;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
        throw err;
      }
    },
    createReadStream(digest, range) {
      // For whole-file reads off the response path (verify); responses go through ContentStore.open.
      const highWaterMark = 256 * 1024;
      return createReadStream(pathFor(digest), range ? { start: range.start, end: range.end, highWaterMark } : { highWaterMark });
    },
    readAll(digest) {
      return readFile(pathFor(digest));
    },
    openRead(digest) {
      return open(pathFor(digest), 'r');
    },
    async createTempFile(dir = tmpDir) {
      if (path.dirname(path.resolve(dir)) !== tmpDir && path.resolve(dir) !== tmpDir) throw new Error(`${dir} is not a staging directory of ${tmpDir}`);
      const tempPath = path.join(dir, randomUUID());
      return { path: tempPath, handle: await open(tempPath, 'w+', 0o644) };
    },
    async createStagingDir() {
      const dir = path.join(tmpDir, `staging-${randomUUID()}`);
      await mkdir(dir, { recursive: true });
      return dir;
    },
    async adopt(tempPath, digest) {
      const target = pathFor(digest);
      await mkdir(path.dirname(target), { recursive: true });
      await rename(tempPath, target);
    },
    async writeAll(digest, bytes) {
      const temp = await store.createTempFile();
      try {
        await temp.handle.writeFile(bytes);
        await temp.handle.sync();
        await store.adopt(temp.path, digest);
      } catch (err) {
        await store.discard(temp.path);
        throw err;
      } finally {
        await temp.handle.close();
      }
    },
    async discard(tempPath) {
      await rm(tempPath, { force: true });
    },
    async remove(digest) {
      await rm(pathFor(digest), { force: true });
    },
    async listTemp() {
      const files: Array<{ path: string; mtimeMs: number }> = [];
      for (const name of await readdirOrEmpty(tmpDir)) {
        const info = await stat(path.join(tmpDir, name)).catch(() => undefined);
        if (info?.isFile()) files.push({ path: path.join(tmpDir, name), mtimeMs: info.mtimeMs });
      }
      return files;
    },
    async probeWritable() {
      const temp = await store.createTempFile();
      try {
        await temp.handle.writeFile('probe');
        await temp.handle.sync();
      } finally {
        await temp.handle.close();
        await store.discard(temp.path);
      }
    },
    async *list() {
      for (const algorithm of await readdirOrEmpty(blobsDir)) {
        for (const prefix of await readdirOrEmpty(path.join(blobsDir, algorithm))) {
          for (const hex of await readdirOrEmpty(path.join(blobsDir, algorithm, prefix))) {
            const info = await stat(path.join(blobsDir, algorithm, prefix, hex)).catch(() => undefined);
            if (info?.isFile()) yield { digest: `${algorithm}:${hex}`, size: info.size, mtimeMs: info.mtimeMs };
          }
        }
      }
    },
  };
  return store;
}

async function readdirOrEmpty(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'ENOTDIR') return [];
    throw err;
  }
}
