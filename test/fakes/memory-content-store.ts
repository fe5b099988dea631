import { Writable } from 'node:stream';
import { createHash } from 'node:crypto';
import { digestOf, parseDigest, type Digest } from '../../src/oci/digest.js';
import type { ByteRange } from '../../src/storage/blob-store.js';
import type { CommitEntry, ContentStoreIndex, ContentSource, ContentStore, ContentWrite, StagedContent, VerifiedContent } from '../../src/storage/content-store.js';
import { DigestMismatchError } from '../../src/storage/digest-mismatch-error.js';

/** A ContentStore in memory, for unit tests: what it holds, and what it was asked to do. */
export interface MemoryContentStore extends ContentStore {
  /** Committed content by digest value. */
  readonly committed: ReadonlyMap<string, Buffer>;
  /** Writes begun so far (committed, aborted or running). */
  readonly writes: number;
  /** Writes neither committed nor aborted yet (what would be temp files on disk). */
  readonly openWrites: number;
}

const notFound = (digest: Digest) => Object.assign(new Error(`${digest.value} is not stored`), { code: 'ENOENT' });

/** Sends `bytes` (or a range) into `dest` without ending it, one write at a time. */
function sendBuffer(bytes: () => { data: Buffer; limit: number; failure?: Error | undefined; isComplete: boolean }, wait: () => Promise<void>, range: ByteRange | undefined, dest: Writable, onBytes?: (n: number) => void): Promise<number> {
  return (async () => {
    let position = range?.start ?? 0;
    const end = range ? range.end + 1 : undefined;
    let sent = 0;
    for (;;) {
      const state = bytes();
      if (state.failure) throw state.failure;
      if (dest.destroyed) throw Object.assign(new Error('the receiver went away'), { code: 'ERR_STREAM_PREMATURE_CLOSE' });
      const limit = Math.min(state.limit, end ?? Infinity);
      if (position < limit) {
        const chunk = state.data.subarray(position, limit);
        await new Promise<void>((resolve, reject) => dest.write(chunk, (err) => (err ? reject(err) : resolve())));
        position += chunk.length;
        sent += chunk.length;
        onBytes?.(chunk.length);
        continue;
      }
      if (end !== undefined ? position >= end : state.isComplete) return sent;
      if (state.isComplete) throw new Error(`the content ended at ${position} bytes, before its expected end`);
      await wait();
    }
  })();
}

/**
 * The ContentStore contract over Maps: a write grows one Buffer that followers read (holding
 * its last byte back until verify), commits land in `committed` and in `index`, and an open of
 * anything else rejects with ENOENT as the disk store does.
 */
export function createMemoryContentStore(deps: { index: ContentStoreIndex }): MemoryContentStore {
  const committed = new Map<string, Buffer>();
  const staged = new Map<string, Buffer>();
  let writes = 0;
  let openWrites = 0;
  let stagingDirs = 0;

  const store: MemoryContentStore = {
    committed,
    get writes() {
      return writes;
    },
    get openWrites() {
      return openWrites;
    },
    async open(digest, { range, size } = {}) {
      const data = committed.get(digest.value);
      if (!data) throw notFound(digest);
      const end = range ? range.end + 1 : (size ?? data.length);
      const state = () => ({ data, limit: Math.min(end, data.length), isComplete: true, failure: end > data.length ? new Error('the file ended before its expected end') : undefined });
      return { size: end - (range?.start ?? 0), send: (dest, options = {}) => sendBuffer(state, async () => undefined, range, dest, options.onBytes) };
    },
    async readAll(digest) {
      const data = committed.get(digest.value);
      if (!data) throw notFound(digest);
      return Buffer.from(data);
    },
    async size(digest) {
      return committed.get(digest.value)?.length;
    },
    async beginWrite(expected, { size } = {}) {
      writes += 1;
      openWrites += 1;
      const ended = () => (openWrites -= 1);
      return memoryWrite(expected, size, ended, (verified, meta) => store.commitAll([{ digest: verified.digest, meta, bytes: verified.bytes }]), (digest, range) => ({
        size: range ? range.end - range.start + 1 : committed.get(digest.value)?.length,
        send: async (dest, options) => (await store.open(digest, { range })).send(dest, options),
      }));
    },
    put(digest, bytes, meta) {
      return store.commitAll([{ digest, bytes, meta }]);
    },
    async createStagingDir() {
      stagingDirs += 1;
      return `memory-staging-${stagingDirs}`;
    },
    async stage(body, stagingDir, { digest, size } = {}) {
      const chunks: Buffer[] = [];
      for await (const chunk of body) chunks.push(chunk);
      const bytes = Buffer.concat(chunks);
      const actual = digestOf(bytes, digest?.algorithm ?? 'sha256');
      if (size !== undefined && size !== bytes.length) throw new DigestMismatchError(digest?.value ?? actual, actual, `size mismatch: expected ${size} bytes, got ${bytes.length}`);
      if (digest && digest.value !== actual) throw new DigestMismatchError(digest.value, actual);
      const tempPath = `${stagingDir}/${writes++}`;
      staged.set(tempPath, bytes);
      return { tempPath, digest: digest ?? parseDigest(actual), size: bytes.length } satisfies StagedContent;
    },
    async commitAll(entries: readonly CommitEntry[], alsoInTransaction) {
      const placed: string[] = [];
      try {
        for (const entry of entries) {
          const bytes = 'bytes' in entry ? Buffer.from(entry.bytes) : staged.get(entry.staged.tempPath);
          if (!bytes) throw notFound(entry.digest);
          if (digestOf(bytes, entry.digest.algorithm) !== entry.digest.value) throw new Error(`refusing to store bytes under ${entry.digest.value}: they hash to something else`);
          if (committed.has(entry.digest.value)) continue;
          committed.set(entry.digest.value, bytes);
          placed.push(entry.digest.value);
        }
        deps.index.transaction(() => {
          for (const { digest, meta, ...content } of entries) {
            const size = 'staged' in content ? content.staged.size : content.bytes.length;
            deps.index.putContent({ digest: digest.value, size, mediaType: meta.mediaType, kind: meta.kind }, meta.link, meta.references);
          }
          alsoInTransaction?.();
        });
      } catch (err) {
        for (const digest of placed) committed.delete(digest);
        throw err;
      }
    },
  };
  return store;
}

function memoryWrite(
  expected: Digest | Pick<Digest, 'algorithm'>,
  size: number | undefined,
  ended: () => void,
  commit: (verified: VerifiedContent & { bytes: Buffer }, meta: Parameters<ContentWrite['commit']>[0]) => Promise<void>,
  committedSource: (digest: Digest, range: ByteRange | undefined) => ContentSource,
): ContentWrite {
  let data = Buffer.alloc(0);
  const hash = createHash(expected.algorithm);
  let state: 'writing' | 'verified' | 'committed' | 'failed' = 'writing';
  let failure: Error | undefined;
  let verified: (VerifiedContent & { bytes: Buffer }) | undefined;
  let listeners: Array<() => void> = [];
  const notify = () => {
    const waiting = listeners;
    listeners = [];
    for (const listener of waiting) listener();
  };
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      if (state !== 'writing') return callback(failure ?? new Error('the write is finished'));
      if (size !== undefined && data.length + chunk.length > size) return callback(new DigestMismatchError('value' in expected ? (expected as Digest).value : 'content', 'unknown', `size mismatch: more than the expected ${size} bytes`));
      hash.update(chunk);
      data = Buffer.concat([data, chunk]);
      notify();
      callback();
    },
  });
  const write: ContentWrite = {
    sink,
    get written() {
      return data.length;
    },
    follow(range) {
      const rangeSize = range ? range.end - range.start + 1 : size;
      if (state === 'committed' && verified) return committedSource(verified.digest, range);
      const view = () => ({
        data,
        // Held back until verified, as the disk store does.
        limit: state === 'writing' ? Math.min(data.length, (size ?? data.length) - 1) : data.length,
        isComplete: state !== 'writing',
        failure,
      });
      return { size: rangeSize, send: (dest, options = {}) => sendBuffer(view, () => new Promise<void>((resolve) => listeners.push(resolve)), range, dest, options.onBytes) };
    },
    verify() {
      if (verified) return { digest: verified.digest, size: verified.size };
      if (state !== 'writing') throw failure ?? new Error(`the write is ${state}`);
      const actual = `${expected.algorithm}:${hash.digest('hex')}`;
      const want = 'value' in expected ? (expected as Digest).value : actual;
      if (size !== undefined && size !== data.length) throw new DigestMismatchError(want, actual, `size mismatch for ${want}: expected ${size} bytes, got ${data.length}`);
      if (actual !== want) throw new DigestMismatchError(want, actual);
      verified = { digest: parseDigest(actual), size: data.length, bytes: data };
      state = 'verified';
      notify();
      return { digest: verified.digest, size: verified.size };
    },
    async commit(meta) {
      if (!verified || state !== 'verified') throw new Error('commit() of a write that is not verified');
      await commit(verified, meta);
      state = 'committed';
      ended();
      notify();
    },
    async abort(reason) {
      if (state === 'committed' || state === 'failed') return;
      state = 'failed';
      failure = reason ?? new Error('the write was aborted');
      sink.destroy(failure);
      ended();
      notify();
    },
  };
  return write;
}
