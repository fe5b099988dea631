import { Readable, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { digestOf, type Digest } from '../oci/digest.js';
import type { BlobStore, ByteRange } from './blob-store.js';
import { FileContentWrite, type WriteHost } from './content-write.js';
import type { ContentIndex } from './index-parts.js';
import type { MetadataIndex, RepositoryRecord } from './metadata-index.js';
import { ReadBudget } from './read-budget.js';
import { sendBytes } from './send-bytes.js';

export type { ByteRange };

/** Something to send: committed content, or a write being followed. */
export interface ContentSource {
  /** Bytes it sends (a range's length for a range); undefined only for a write of unknown length. */
  readonly size: number | undefined;
  /**
   * Writes the bytes into `dest` without ending it, through the read budget's reused buffers (or
   * as received, for a follower keeping pace with its write); resolves to the count once `dest`
   * took them all; rejects when the source fails (a file shorter than it should be, a write that
   * failed) or `dest` goes away. Closes the source: call it once.
   */
  send(dest: Writable, options?: { onBytes?: (bytes: number) => void }): Promise<number>;
}

/** Content whose size and digest were checked. */
export interface VerifiedContent {
  readonly digest: Digest;
  readonly size: number;
}

/** The index row a commit writes with the file. */
export interface CommitMeta {
  readonly kind: 'blob' | 'manifest';
  readonly mediaType: string | null;
  /** The repository the content was fetched for (or imported into). */
  readonly link?: RepositoryRecord | undefined;
  /** Digests a manifest references (its children, for eviction and garbage collection). */
  readonly references?: readonly string[] | undefined;
}

/** Content being written into tmp/, readable while it lands; committed or aborted by its owner. */
export interface ContentWrite {
  /** Pipe the body in; it is hashed and written as it goes, and fails past the expected size. */
  readonly sink: Writable;
  /** Bytes the sink accepted so far. */
  readonly written: number;
  /**
   * A source of the write (or a range of it) as it lands: its last byte is held back until
   * {@link verify} passed; it fails when the write is aborted. After the commit it reads the
   * committed file.
   */
  follow(range?: ByteRange): ContentSource;
  /**
   * Once the sink finished: checks size and digest, without touching the disk; followers then get
   * their last byte, while the file is made durable.
   * @throws DigestMismatchError when the content is not what was expected; the caller aborts.
   */
  verify(): VerifiedContent;
  /**
   * After {@link verify}: fsyncs the file, renames it into place and writes its index row (the
   * commit point); content already in place stays as it is and the temp file goes.
   */
  commit(meta: CommitMeta): Promise<void>;
  /** Discards the temp file; followers fail with `reason`. Does nothing after the commit. */
  abort(reason?: Error): Promise<void>;
}

/** A file staged by {@link ContentStore.stage}: verified and synced, not yet committed. */
export interface StagedContent extends VerifiedContent {
  readonly tempPath: string;
}

/** One piece of content for {@link ContentStore.commitAll}: a staged file or bytes to write. */
export type CommitEntry = { readonly digest: Digest; readonly meta: CommitMeta } & ({ readonly staged: StagedContent } | { readonly bytes: Uint8Array });

/** What the content store needs of the index: content rows, and one transaction per commit for them (and the caller's rows). */
export type ContentStoreIndex = Pick<ContentIndex, 'putContent'> & Pick<MetadataIndex, 'transaction'>;

/**
 * The content of the cache, by digest: committed files (sent through the read budget), writes in
 * progress (followed while they land), and the one commit path every writer takes — the file
 * into place, then its index row — whether a blob fill, a manifest, or an import's batch.
 */
export interface ContentStore {
  /** Committed content, or a range of it; `size` (from the index) spares a stat. Rejects with an error of code ENOENT when the file is gone. */
  open(digest: Digest, options?: { range?: ByteRange | undefined; size?: number | undefined }): Promise<ContentSource>;
  readAll(digest: Digest): Promise<Buffer>;
  /** The committed file's size, or undefined when it is not on disk. */
  size(digest: Digest): Promise<number | undefined>;
  /**
   * Opens a temp file for content expected to be `digest` (of `size` bytes when known); with an
   * algorithm only, any content, whose digest {@link ContentWrite.verify} computes.
   */
  beginWrite(digest: Digest | Pick<Digest, 'algorithm'>, options?: { size?: number | undefined }): Promise<ContentWrite>;
  /** Small content (manifests, referrers answers): written unless already there, committed and indexed. */
  put(digest: Digest, bytes: Uint8Array, meta: CommitMeta): Promise<void>;
  /**
   * A directory under tmp/ for files staged longer than a fill may run (an import): garbage
   * collection removes dead temp files, never directories; a server start purges tmp/ whole.
   */
  createStagingDir(): Promise<string>;
  /**
   * Streams `body` into `stagingDir`, hashed, checked against `expected` (and `size`) when given,
   * and synced. The file stays there until {@link commitAll} or the directory is removed.
   * @throws DigestMismatchError (the file discarded) when the content is not `expected`.
   */
  stage(body: AsyncIterable<Buffer>, stagingDir: string, expected?: { digest?: Digest | undefined; size?: number | undefined }): Promise<StagedContent>;
  /**
   * Places every entry not already on disk (a staged file of content already there is discarded),
   * then writes every index row in one transaction, with
   * `alsoInTransaction` (the caller's own rows: tags, pins) in it too. When anything fails, the
   * files this call placed are removed and no row is written: the cache is as it was.
   */
  commitAll(entries: readonly CommitEntry[], alsoInTransaction?: () => void): Promise<void>;
}

/** The content store over `files`, indexing what it commits in `index`. */
export function createContentStore(deps: { files: BlobStore; index: ContentStoreIndex; budget?: ReadBudget }): ContentStore {
  const { files, index } = deps;
  const budget = deps.budget ?? new ReadBudget();

  const store: ContentStore = {
    async open(digest, { range, size: knownSize } = {}) {
      const handle = await files.openRead(digest);
      let end: number;
      try {
        // A file shorter than this ends the send with an error: a cut connection, never a short 200.
        end = range ? range.end + 1 : (knownSize ?? (await handle.stat()).size);
      } catch (err) {
        await handle.close();
        throw err;
      }
      const start = range?.start ?? 0;
      const source = {
        available: async (position: number) => Math.max(0, end - position),
        read: async (buffer: Buffer, length: number, position: number) => (await handle.read(buffer, 0, length, position)).bytesRead,
        close: () => void handle.close().catch(() => undefined),
      };
      return {
        size: end - start,
        send: (dest, { onBytes } = {}) => sendBytes(source, dest, { start, end, lease: budget.acquire(), ...(onBytes ? { onBytes } : {}) }),
      };
    },
    readAll: (digest) => files.readAll(digest),
    size: (digest) => files.size(digest),
    async beginWrite(digest, { size } = {}) {
      return new FileContentWrite(host, await files.createTempFile(), digest, size);
    },
    put(digest, bytes, meta) {
      return store.commitAll([{ digest, bytes, meta }]);
    },
    createStagingDir: () => files.createStagingDir(),
    async stage(body, stagingDir, { digest, size } = {}) {
      const write = new FileContentWrite(host, await files.createTempFile(stagingDir), digest ?? { algorithm: 'sha256' }, size);
      try {
        await pipeline(Readable.from(body), write.sink);
        write.verify();
        return await write.stage();
      } catch (err) {
        await write.abort(err as Error);
        throw err;
      }
    },
    async commitAll(entries, alsoInTransaction) {
      const placed: Digest[] = [];
      try {
        for (const entry of entries) {
          if ('bytes' in entry && digestOf(entry.bytes, entry.digest.algorithm) !== entry.digest.value) {
            throw new Error(`refusing to store bytes under ${entry.digest.value}: they hash to something else`);
          }
          if ((await files.size(entry.digest)) !== undefined) {
            // The same bytes are in place already (a fill from another upstream, an import of cached content).
            if ('staged' in entry) await files.discard(entry.staged.tempPath);
            continue;
          }
          if ('staged' in entry) await files.adopt(entry.staged.tempPath, entry.digest);
          else await files.writeAll(entry.digest, entry.bytes);
          placed.push(entry.digest);
        }
        index.transaction(() => {
          for (const { digest, meta, ...content } of entries) {
            const size = 'staged' in content ? content.staged.size : content.bytes.length;
            index.putContent({ digest: digest.value, size, mediaType: meta.mediaType, kind: meta.kind }, meta.link, meta.references);
          }
          alsoInTransaction?.();
        });
      } catch (err) {
        // Only files this call put there: content that was in place before stays.
        await Promise.all(placed.map((digest) => files.remove(digest).catch(() => undefined)));
        throw err;
      }
    },
  };

  const host: WriteHost = {
    budget,
    // Nothing is awaited after the index row: a fill releases its disk claim in the same tick, so
    // its bytes are never counted twice (index and claim) by an eviction in between.
    place: (tempPath, content, meta) => store.commitAll([{ digest: content.digest, meta, staged: { tempPath, ...content } }]),
    discard: (tempPath) => files.discard(tempPath),
    open: (digest, options) => store.open(digest, options),
  };
  return store;
}
