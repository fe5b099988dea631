import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Credentials } from '../config/credentials.js';
import type { Logger } from '../logger.js';
import type { Metrics } from '../metrics.js';
import type { Digest } from '../oci/digest.js';
import { OciError } from '../oci/errors.js';
import type { BlobStore } from '../storage/blob-store.js';
import { BlobWriter } from '../storage/blob-writer.js';
import { DigestMismatchError } from '../storage/digest-mismatch-error.js';
import type { MetadataIndex, RepositoryRecord } from '../storage/metadata-index.js';
import type { Upstream } from '../upstream/upstream-client.js';
import { UpstreamError } from '../upstream/upstream-error.js';
import { sendBytes } from '../storage/send-bytes.js';
import { FillSource, type FillProgress } from './fill-source.js';
import type { BlobSender } from './registry.js';
import type { SpaceClaim, StorageKeeper } from './storage-keeper.js';

/** A fill whose upstream answered: its size (when known) and a way to read it as it lands. */
export interface JoinedFill {
  readonly size: number | undefined;
  /** Whether this caller started the fill (false: it joined one already running). */
  readonly isStarter: boolean;
  /** Sends `range` (or all) of the blob as it lands. */
  send: BlobSender;
  /** Settles when the fill has ended: committed, or failed (it never rejects). */
  readonly done: Promise<void>;
}

/** Starts and joins blob fills; at most one upstream fetch per digest at a time. */
export interface BlobFills {
  /**
   * Joins the running fill of `digest` from `upstream` or starts one. Resolves once the upstream
   * has answered with a body; rejects with its UpstreamError (a 404 included) otherwise. Fills
   * are per upstream (an upstream delivers its own bytes); `lane` keeps a fill apart from the
   * shared one (a requester whose joined fill failed for its starter's credentials).
   * The caller decides whether its requester may join: see {@link runningFor}.
   */
  join(upstream: Upstream, link: RepositoryRecord, digest: Digest, credentials: Credentials | undefined, options?: { lane?: string }): Promise<JoinedFill>;
  /** The repository the running shared fill of `digest` from this upstream was started for, if one runs. */
  runningFor(upstreamHost: string, digest: Digest): RepositoryRecord | undefined;
  /** Fills still running. */
  readonly size: number;
  /** At most this many run at once (`cache.maxConcurrentFills`); a fill past it is refused. */
  readonly limit: number;
  /** Resolves when every running fill has ended (for shutdown); no fill starts after it is called. */
  drain(): Promise<void>;
}

/** A body of unknown length claims disk in steps of this much as it grows. */
const CLAIM_STEP_BYTES = 8 * 2 ** 20;
/** Seconds a client refused for too many concurrent fills waits before asking again. */
const BUSY_RETRY_AFTER_SECONDS = 5;

/**
 * Passes the body through while holding disk for every byte before it is written: a known
 * length was claimed whole up front; an unknown one grows its claim step by step, and the fill
 * fails cleanly (its temp file discarded) once the cache has no more room.
 */
function claimedBytes(claim: SpaceClaim, expectedSize: number | undefined, digest: Digest): Transform {
  let seen = 0;
  return new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      seen += chunk.length;
      if (expectedSize !== undefined && seen > expectedSize) {
        return callback(new DigestMismatchError(digest.value, 'unknown', `size mismatch for ${digest.value}: the upstream sent more than its ${expectedSize}-byte Content-Length`));
      }
      if (seen <= claim.bytes) return callback(null, chunk);
      claim.grow(Math.max(CLAIM_STEP_BYTES, seen - claim.bytes)).then(
        () => callback(null, chunk),
        (err: unknown) => callback(err as Error),
      );
    },
  });
}

/** Errors of the local disk, as opposed to the upstream connection. */
const LOCAL_DISK_ERRORS = new Set(['ENOSPC', 'EDQUOT', 'EIO', 'EROFS', 'EACCES', 'EPERM', 'EMFILE', 'ENFILE']);
const BODY_TIMEOUT_CODES = new Set(['UND_ERR_BODY_TIMEOUT', 'ETIMEDOUT']);

/**
 * What a fill's clients are told when it fails: a client that has no byte yet gets an OCI error
 * from it (503 naming the upstream, or the cache's own refusal), never a 500 for a broken
 * upstream body, a wrong digest or a full disk.
 */
function asClientError(err: unknown, host: string, what: string): Error {
  if (err instanceof UpstreamError || err instanceof OciError) return err;
  const message = (err as Error).message;
  if (err instanceof DigestMismatchError) return new UpstreamError('invalid', host, `upstream ${host} sent ${what} with the wrong content: ${message}`, { cause: err });
  const code = (err as NodeJS.ErrnoException).code ?? '';
  if (LOCAL_DISK_ERRORS.has(code)) return new OciError('UNAVAILABLE', `the cache could not store ${what} (${code})`, { cause: err });
  // The fill's only abort signal is its fillTimeout.
  if (BODY_TIMEOUT_CODES.has(code) || ['TimeoutError', 'AbortError'].includes((err as Error).name)) return new UpstreamError('timeout', host, `upstream ${host} stalled sending ${what} (${code || 'fill timeout'})`, { cause: err });
  return new UpstreamError('unreachable', host, `upstream ${host} broke off sending ${what}: ${code || message}`, { cause: err });
}

class BlobFill implements FillProgress {
  writer!: BlobWriter;
  link!: RepositoryRecord;
  size: number | undefined;
  state: 'filling' | 'verified' | 'committed' | 'failed' = 'filling';
  error: Error | undefined;
  readonly done: Promise<void>;
  readonly ready: Promise<void>;
  #listeners: Array<() => void> = [];

  constructor(run: (fill: BlobFill) => Promise<void>, started: Promise<void>) {
    this.ready = started;
    this.done = run(this);
  }

  onChange(listener: () => void): void {
    this.#listeners.push(listener);
  }

  notify(): void {
    const listeners = this.#listeners;
    this.#listeners = [];
    for (const listener of listeners) listener();
  }
}

/**
 * The fills of one instance. Each streams the upstream body into a temp file (never into
 * memory); every client, the first included, is sent that file as it grows, so a slow or
 * vanished client never slows or aborts the fill, and the fill never waits on a client.
 * The fill is bounded by `fillTimeoutMs` instead. The index row is written only after the
 * rename, so nothing unverified is ever served as cached.
 */
export function createBlobFills(
  options: { fillTimeoutMs: number; maxConcurrentFills: number },
  deps: { store: BlobStore; index: MetadataIndex; space: Pick<StorageKeeper, 'claim'>; metrics: Metrics; logger: Logger; onCommit?: () => void },
): BlobFills {
  const running = new Map<string, BlobFill>();
  const keyOf = (upstreamHost: string, digest: Digest, lane?: string) => `${upstreamHost}\0${digest.value}${lane === undefined ? '' : `\0${lane}`}`;
  // Set at shutdown: a fill started now (a prefetch queue moving on) would outlive the index.
  let draining = false;

  function start(key: string, upstream: Upstream, link: RepositoryRecord, digest: Digest, credentials: Credentials | undefined): BlobFill {
    let markReady!: () => void;
    let markFailed!: (err: unknown) => void;
    const started = new Promise<void>((resolve, reject) => {
      markReady = resolve;
      markFailed = reject;
    });
    // Callers await `ready`; the rejection is also observed here so it is never unhandled.
    started.catch(() => undefined);

    return new BlobFill(async (fill) => {
      const began = performance.now();
      const signal = AbortSignal.timeout(options.fillTimeoutMs);
      deps.metrics.fillsInFlight.inc();
      let result = 'error';
      let claim: SpaceClaim | undefined;
      try {
        const response = await upstream.getBlob(link.repository, digest.value, { signal, credentials });
        try {
          // Before a byte is written: a fill that cannot fit is refused, never an unbounded disk.
          claim = await deps.space.claim(response.size ?? CLAIM_STEP_BYTES);
          fill.writer = await BlobWriter.create(deps.store, digest, () => fill.notify());
        } catch (err) {
          response.body.on('error', () => undefined).destroy();
          throw err;
        }
        try {
          fill.size = response.size;
          markReady();
          await pipeline(response.body, claimedBytes(claim, response.size, digest), fill.writer, { signal });
          const size = fill.writer.check(digest, response.size);
          // Verified: clients get their last byte now, while the file is fsynced and renamed.
          fill.state = 'verified';
          fill.notify();
          await fill.writer.persist(digest);
          deps.index.putContent({ digest: digest.value, size, mediaType: null, kind: 'blob' }, link);
          // Counted by the index now; held on, it would count twice in the eviction after commit.
          claim.release();
          fill.state = 'committed';
          result = 'committed';
          deps.onCommit?.();
        } finally {
          fill.writer.release();
        }
      } catch (err) {
        // Not joinable from here on: a request arriving while the temp file goes starts afresh.
        if (running.get(key) === fill) running.delete(key);
        fill.error = asClientError(err, upstream.host, `blob ${digest.value} of ${link.repository}`);
        fill.state = 'failed';
        fill.notify();
        markFailed(fill.error);
        if (err instanceof DigestMismatchError) {
          result = 'mismatch';
          deps.metrics.digestMismatches.inc();
          deps.logger.warn({ upstream: upstream.host, repository: link.repository, digest: digest.value, err: err.message }, 'upstream sent a blob that does not match its digest; discarded');
        } else if (err instanceof OciError) {
          result = 'refused';
          deps.logger.warn({ upstream: upstream.host, repository: link.repository, digest: digest.value, err: err.message }, 'blob fill refused');
        } else if (fill.writer && LOCAL_DISK_ERRORS.has((err as NodeJS.ErrnoException).code ?? '')) {
          // A local disk error (ENOSPC, EIO): the client gets a clean cut, the cache keeps serving what it has.
          const code = (err as NodeJS.ErrnoException).code ?? 'unknown';
          deps.metrics.storageErrors.inc({ operation: 'fill', code });
          deps.logger.error({ digest: digest.value, code, err: (err as Error).message }, 'blob fill failed on local storage');
        } else if (fill.writer) {
          deps.logger.warn({ upstream: upstream.host, repository: link.repository, digest: digest.value, err: (err as Error).message }, 'blob fill failed');
        }
        await fill.writer?.discard().catch(() => undefined);
      } finally {
        // After the discard: those bytes are gone.
        claim?.release();
        if (running.get(key) === fill) running.delete(key);
        deps.metrics.fillsInFlight.dec();
        deps.metrics.fillSeconds.observe({ result }, (performance.now() - began) / 1000);
        fill.notify();
      }
    }, started);
  }

  return {
    runningFor: (upstreamHost, digest) => running.get(keyOf(upstreamHost, digest))?.link,
    async join(upstream, link, digest, credentials, { lane } = {}) {
      const key = keyOf(upstream.host, digest, lane);
      let fill = running.get(key);
      const isStarter = fill === undefined;
      if (!fill) {
        if (draining) throw new Error('shutting down: no new downloads');
        if (running.size >= options.maxConcurrentFills) {
          throw new OciError('UNAVAILABLE', `${running.size} downloads from upstreams are running, the most cache.maxConcurrentFills allows; retry shortly`, {
            headers: { 'retry-after': String(BUSY_RETRY_AFTER_SECONDS) },
          });
        }
        fill = start(key, upstream, link, digest, credentials);
        fill.link = link;
        running.set(key, fill);
      }
      await fill.ready;
      const joined = fill;
      const send: BlobSender = async (dest, options = {}) => {
        // A fill that ended has released its descriptor: read the committed file instead.
        if (joined.state === 'committed') return deps.store.send(digest, dest, { ...options, size: joined.writer.written });
        if (joined.state === 'failed') throw joined.error ?? new Error('blob fill failed');
        const { range, onBytes } = options;
        const lease = deps.store.readBudget.acquire();
        return sendBytes(new FillSource(joined), dest, { start: range?.start ?? 0, end: range ? range.end + 1 : undefined, lease, ...(onBytes ? { onBytes } : {}) });
      };
      return { size: joined.size, isStarter, send, done: joined.done };
    },
    get size() {
      return running.size;
    },
    limit: options.maxConcurrentFills,
    async drain() {
      draining = true;
      await Promise.all([...running.values()].map((fill) => fill.done));
    },
  };
}
