import type { ErrorRequestHandler, Response } from 'express';
import type { Logger } from '../logger.js';
import { OciError } from '../oci/errors.js';
import { UpstreamError } from '../upstream/upstream-error.js';
import { challengeFor } from './auth-challenge.js';

/**
 * The one place errors become client answers. Upstream outages are 503 UNAVAILABLE naming the
 * upstream (containerd then falls back to the next host at once); anything unrecognised is a
 * 500 UNKNOWN whose details stay in the log.
 */
export function toOciError(err: unknown): OciError {
  if (err instanceof OciError) return err;
  if (err instanceof UpstreamError) {
    const retry = err.retryAfterSeconds !== undefined ? { 'retry-after': String(err.retryAfterSeconds) } : undefined;
    switch (err.kind) {
      case 'auth':
        // 403: the upstream knows who asked and says no; new credentials will not help, a 401 would ask for them.
        if (err.status === 403) return new OciError('DENIED', err.message, { cause: err });
        return new OciError('UNAUTHORIZED', err.message, { cause: err });
      case 'denied':
        return new OciError('DENIED', err.message, { cause: err });
      case 'status':
        if (err.status === 429) return new OciError('TOOMANYREQUESTS', err.message, { cause: err, ...(retry && { headers: retry }) });
        return new OciError('UNAVAILABLE', err.message, { cause: err, detail: { upstream: err.upstream, status: err.status }, ...(retry && { headers: retry }) });
      default:
        return new OciError('UNAVAILABLE', err.message, { cause: err, detail: { upstream: err.upstream } });
    }
  }
  // Express decodes path parameters before any route sees them; bad percent-encoding (`%ZZ`,
  // `%ff%fe`: RFC 3986 §2.1, not UTF-8) is the client's mistake, in the name or reference.
  if (err instanceof URIError) return new OciError('NAME_INVALID', 'the request path is not valid percent-encoded UTF-8', { cause: err });
  return new OciError('UNKNOWN');
}

/**
 * An upstream failure's cause for the access log (message plus the socket error code under it,
 * `ECONNREFUSED`), or undefined for other errors. Never sent to the client.
 */
export function upstreamFailureOf(err: unknown): string | undefined {
  if (!(err instanceof UpstreamError)) return undefined;
  const cause = err.cause as { code?: string; message?: string } | undefined;
  const detail = cause?.code ?? cause?.message;
  return detail && !err.message.includes(detail) ? `${err.message} (${detail})` : err.message;
}

/** Writes an OCI error envelope; a HEAD request gets the status and headers only. */
export function sendOciError(res: Response, error: OciError): void {
  res.status(error.status);
  for (const [name, value] of Object.entries(error.headers)) res.setHeader(name, value);
  if (res.req.method === 'HEAD') {
    res.end();
    return;
  }
  const body = { errors: [{ code: error.code, message: error.message, detail: error.detail ?? null }] };
  res.type('application/json').send(JSON.stringify(body));
}

export function createErrorHandler(logger: Logger, options: { publicUrl?: string | undefined } = {}): ErrorRequestHandler {
  return (err, req, res, _next) => {
    const error = toOciError(err);
    if (error.code === 'UNKNOWN' && !(err instanceof OciError)) {
      logger.error({ err, method: req.method, path: req.path }, 'unexpected error');
    }
    if (res.headersSent) {
      // A half-sent body must never look complete: cut the connection.
      res.destroy(err instanceof Error ? err : undefined);
      return;
    }
    // Every 401 says where to authenticate: our token endpoint, which takes the client's credentials.
    if (error.status === 401) res.setHeader('www-authenticate', challengeFor(req, options.publicUrl));
    sendOciError(res, error);
  };
}
