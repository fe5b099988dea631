import type { ErrorRequestHandler, Response } from 'express';
import type { Logger } from '../logger.js';
import { OciError } from '../oci/errors.js';
import { challengeFor } from './auth-challenge.js';

/**
 * The one place errors become client answers. The registry throws OciErrors only (upstream
 * failures are mapped in cache/); anything unrecognised is a 500 UNKNOWN whose details stay in
 * the log.
 */
export function toOciError(err: unknown): OciError {
  if (err instanceof OciError) return err;
  // Express decodes path parameters before any route sees them; bad percent-encoding (`%ZZ`,
  // `%ff%fe`: RFC 3986 §2.1, not UTF-8) is the client's mistake, in the name or reference.
  if (err instanceof URIError) return new OciError('NAME_INVALID', 'the request path is not valid percent-encoded UTF-8', { cause: err });
  return new OciError('UNKNOWN');
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
