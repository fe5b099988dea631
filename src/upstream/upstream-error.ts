/** Why an upstream request failed. */
export type UpstreamErrorKind =
  /** No connection could be made, or it broke. */
  | 'unreachable'
  /** Connect, response-header or body-idle timeout. */
  | 'timeout'
  /** The upstream answered with a status we do not turn into content (see `status`). */
  | 'status'
  /** The upstream wants credentials we do not have, or refused the ones we sent. */
  | 'auth'
  /** The upstream's answer broke the protocol: too large, wrong digest, unreadable. */
  | 'invalid'
  /** The request would have gone to an address or scheme the operator did not allow (never contacted). */
  | 'denied';

/**
 * Thrown by the upstream layer for every failed exchange with an upstream registry. It never
 * carries an HTTP status for our own response: the HTTP layer decides that.
 */
export class UpstreamError extends Error {
  override readonly name = 'UpstreamError';
  readonly kind: UpstreamErrorKind;
  /** The upstream host as configured (`docker.io`), for messages and metrics. */
  readonly upstream: string;
  /** The upstream's response status, when there was a response. */
  readonly status: number | undefined;
  /** Seconds, from the upstream's Retry-After on a 429 or 503. */
  readonly retryAfterSeconds: number | undefined;

  constructor(
    kind: UpstreamErrorKind,
    upstream: string,
    message: string,
    options: { status?: number; retryAfterSeconds?: number; cause?: unknown } = {},
  ) {
    super(message, { cause: options.cause });
    this.kind = kind;
    this.upstream = upstream;
    this.status = options.status;
    this.retryAfterSeconds = options.retryAfterSeconds;
  }

  /** True for a plain "not there" answer (404), as opposed to a failure. */
  get isNotFound(): boolean {
    return this.kind === 'status' && this.status === 404;
  }

  /**
   * True when the upstream is down rather than answering: no connection, a timeout, 429 or 5xx
   * (an open circuit breaker is `unreachable`). The notion cache/tag-freshness.ts serves stale
   * tags on; a mirror in `via` is bypassed on it.
   */
  get isOutage(): boolean {
    if (this.kind === 'unreachable' || this.kind === 'timeout') return true;
    return this.kind === 'status' && this.status !== undefined && (this.status === 429 || this.status >= 500);
  }
}
