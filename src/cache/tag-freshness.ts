import { UpstreamError } from '../upstream/upstream-error.js';

/**
 * True while a cached tag may be served without asking the upstream. A `tagTtlMs` of 0 means
 * every request revalidates, as `imagePullPolicy: Always` expects.
 */
export function isTagFresh(checkedAt: number, now: number, tagTtlMs: number): boolean {
  return tagTtlMs > 0 && now - checkedAt < tagTtlMs;
}

/**
 * True for failures that say "the upstream cannot answer now" rather than "the content is not
 * there" or "you may not have it": these are when cached content is served stale
 * (distribution's proxytagservice does the same on any error; we keep 404 and auth apart).
 */
export function isUpstreamOutage(err: unknown): err is UpstreamError {
  if (!(err instanceof UpstreamError)) return false;
  if (err.kind === 'unreachable' || err.kind === 'timeout') return true;
  return err.kind === 'status' && err.status !== undefined && (err.status === 429 || err.status >= 500);
}

/** The RFC 9111 §5.5 style warning sent with a stale answer. */
export function staleWarning(err: UpstreamError): string {
  const reason = err.message.replace(/["\\]/g, "'");
  return `111 pullthrough "Revalidation failed: ${reason}"`;
}
