import { OciError } from '../oci/errors.js';
import { UpstreamError } from '../upstream/upstream-error.js';

/** An upstream failure's cause for the log: its message plus the socket error under it (`ECONNREFUSED`). */
function failureOf(err: UpstreamError): string {
  const cause = err.cause as { code?: string; message?: string } | undefined;
  const detail = cause?.code ?? cause?.message;
  return detail && !err.message.includes(detail) ? `${err.message} (${detail})` : err.message;
}

/**
 * What the client hears of an upstream failure, as an OciError: the registry port throws
 * nothing else, so the HTTP layer never learns that upstreams exist. Outages are 503
 * UNAVAILABLE naming the upstream (containerd then tries its next host at once), a 429 stays a
 * 429 with the upstream's Retry-After; other errors pass through unchanged.
 */
export function toClientError(err: unknown): unknown {
  if (!(err instanceof UpstreamError)) return err;
  const retry = err.retryAfterSeconds !== undefined ? { 'retry-after': String(err.retryAfterSeconds) } : undefined;
  const common = { cause: err, upstreamFailure: failureOf(err) };
  switch (err.kind) {
    case 'auth':
      // 403: the upstream knows who asked and says no; new credentials will not help, a 401 would ask for them.
      return new OciError(err.status === 403 ? 'DENIED' : 'UNAUTHORIZED', err.message, common);
    case 'denied':
      return new OciError('DENIED', err.message, common);
    case 'status':
      if (err.status === 429) return new OciError('TOOMANYREQUESTS', err.message, { ...common, ...(retry && { headers: retry }) });
      return new OciError('UNAVAILABLE', err.message, { ...common, detail: { upstream: err.upstream, status: err.status }, ...(retry && { headers: retry }) });
    default:
      return new OciError('UNAVAILABLE', err.message, { ...common, detail: { upstream: err.upstream } });
  }
}

/** Turns an upstream 404 into the spec's "unknown" error; everything else passes through. */
export function notFound(err: unknown, code: 'MANIFEST_UNKNOWN' | 'BLOB_UNKNOWN', what: string): unknown {
  if (err instanceof UpstreamError && err.isNotFound) return new OciError(code, `${what} is not known to upstream ${err.upstream}`, { cause: err });
  return err;
}
