import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Credentials } from '../config/credentials.js';
import type { Logger } from '../logger.js';
import type { Metrics } from '../metrics.js';
import type { Digest } from '../oci/digest.js';
import { OciError } from '../oci/errors.js';
import type { ContentStore, ContentWrite } from '../storage/content-store.js';
import { DigestMismatchError } from '../storage/digest-mismatch-error.js';
import type { RepositoryRecord } from '../storage/metadata-index.js';
import type { Upstream } from '../upstream/upstream-client.js';
import { UpstreamError } from '../upstream/upstream-error.js';
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
 * Passes a body of unknown length through while holding disk for every byte before it is
 * written: its claim grows step by step, and the fill fails cleanly (its temp file discarded)
 * once the cache has no more room. (A known length is claimed whole up front.)
 */
function growingClaim(claim: SpaceClaim): Transform {
  let seen = 0;
  return new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      seen += chunk.length;
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

/** A running (or ended) fill: its write once the upstream answered, or why it failed. */
interface BlobFill {
  readonly link: RepositoryRecord;
  /** Resolves once the upstream answered with a body (the write exists); rejects with the client's error. */
  readonly ready: Promise<void>;
  /** Settles when the fill has ended: committed, or failed (it never rejects). */
  readonly done: Promise<void>;
  write: ContentWrite | undefined;
  claim: SpaceClaim | undefined;
  size: number | undefined;
  error: Error | undefined;
}

/**
 * The fills of one instance. Each streams the upstream body into a content write (never into
 * memory), and every client, the first included, follows that write as it lands, so a slow or
 * vanished client never slows or aborts the fill, and the fill never waits on a client. The fill
 * is bounded by `fillTimeoutMs` instead. It commits only after verification, so nothing
 * unverified is ever served as cached.
 */
export function createBlobFills(
  options: { fillTimeoutMs: number; maxConcurrentFills: number },
  deps: { content: ContentStore; space: Pick<StorageKeeper, 'claim'>; metrics: Metrics; logger: Logger; onCommit?: () => void },
): BlobFills {
  const running = new Map<string, BlobFill>();
  const keyOf = (upstreamHost: string, digest: Digest, lane?: string) => `${upstreamHost}\0${digest.value}${lane === undefined ? '' : `\0${lane}`}`;
  // Set at shutdown: a fill started now (a prefetch queue moving on) would outlive the index.
  let draining = false;

  /** 1. Fetch, claim disk, open the write (the fill is joinable from here), 2. stream, 3. verify, 4. commit. */
  async function run(fill: BlobFill, upstream: Upstream, digest: Digest, credentials: Credentials | undefined, markReady: () => void): Promise<void> {
    const { link } = fill;
    const signal = AbortSignal.timeout(options.fillTimeoutMs);
    const response = await upstream.getBlob(link.repository, digest.value, { signal, credentials });
    let claim: SpaceClaim;
    try {
      // Before a byte is written: a fill that cannot fit is refused, never an unbounded disk.
      claim = fill.claim = await deps.space.claim(response.size ?? CLAIM_STEP_BYTES);
      fill.write = await deps.content.beginWrite(digest, { size: response.size });
    } catch (err) {
      response.body.on('error', () => undefined).destroy();
      throw err;
    }
    const write = fill.write;
    fill.size = response.size;
    markReady();
    if (response.size === undefined) await pipeline(response.body, growingClaim(claim), write.sink, { signal });
    else await pipeline(response.body, write.sink, { signal });
    // Verified: clients get their last byte now, while the file is fsynced and renamed.
    write.verify();
    await write.commit({ kind: 'blob', mediaType: null, link });
    // Counted by the index now; held on, it would count twice in the eviction after commit.
    claim.release();
  }

  function start(key: string, upstream: Upstream, link: RepositoryRecord, digest: Digest, credentials: Credentials | undefined): BlobFill {
    let markReady!: () => void;
    let markFailed!: (err: unknown) => void;
    const ready = new Promise<void>((resolve, reject) => {
      markReady = resolve;
      markFailed = reject;
    });
    // Callers await `ready`; the rejection is also observed here so it is never unhandled.
    ready.catch(() => undefined);
    const fill: { -readonly [K in keyof BlobFill]: BlobFill[K] } = { link, ready, done: Promise.resolve(), write: undefined, claim: undefined, size: undefined, error: undefined };
    fill.done = (async () => {
      const began = performance.now();
      deps.metrics.fillsInFlight.inc();
      let result = 'error';
      try {
        await run(fill, upstream, digest, credentials, markReady);
        result = 'committed';
        deps.onCommit?.();
      } catch (err) {
        // Not joinable from here on: a request arriving while the temp file goes starts afresh.
        if (running.get(key) === fill) running.delete(key);
        fill.error = asClientError(err, upstream.host, `blob ${digest.value} of ${link.repository}`);
        markFailed(fill.error);
        result = classify(err, fill, upstream.host, digest);
        // Its followers fail with the client's error; the temp file goes.
        await fill.write?.abort(fill.error).catch(() => undefined);
      } finally {
        // After the abort: those bytes are gone.
        fill.claim?.release();
        if (running.get(key) === fill) running.delete(key);
        deps.metrics.fillsInFlight.dec();
        deps.metrics.fillSeconds.observe({ result }, (performance.now() - began) / 1000);
      }
    })();
    return fill;
  }

  /** Counts and logs a failed fill; returns its `cache_fill_seconds` result label. */
  function classify(err: unknown, fill: BlobFill, host: string, digest: Digest): string {
    const context = { upstream: host, repository: fill.link.repository, digest: digest.value, err: (err as Error).message };
    if (err instanceof DigestMismatchError) {
      deps.metrics.digestMismatches.inc();
      deps.logger.warn(context, 'upstream sent a blob that does not match its digest; discarded');
      return 'mismatch';
    }
    if (err instanceof OciError) {
      deps.logger.warn(context, 'blob fill refused');
      return 'refused';
    }
    // Before the write was opened, the upstream's own refusal (a 404) is the client's answer, not a failed fill.
    if (!fill.write) return 'error';
    const code = (err as NodeJS.ErrnoException).code ?? '';
    if (LOCAL_DISK_ERRORS.has(code)) {
      // A local disk error (ENOSPC, EIO): the client gets a clean cut, the cache keeps serving what it has.
      deps.metrics.storageErrors.inc({ operation: 'fill', code });
      deps.logger.error({ digest: digest.value, code, err: (err as Error).message }, 'blob fill failed on local storage');
    } else {
      deps.logger.warn(context, 'blob fill failed');
    }
    return 'error';
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
        running.set(key, fill);
      }
      await fill.ready;
      const joined = fill;
      // The write follows the fill to its end: as it lands, then (committed) from the committed file.
      const send: BlobSender = async (dest, { range, onBytes } = {}) => {
        if (joined.error) throw joined.error;
        return joined.write!.follow(range).send(dest, onBytes ? { onBytes } : {});
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
