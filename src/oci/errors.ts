/**
 * The one table of OCI error codes this registry answers with: distribution-spec v1.1
 * "Error Codes", plus distribution's non-spec UNAVAILABLE (503) and UNKNOWN (500).
 */
export const OCI_ERROR_CODES = {
  BLOB_UNKNOWN: { status: 404, message: 'blob unknown to registry' },
  BLOB_UPLOAD_INVALID: { status: 400, message: 'blob upload invalid' },
  BLOB_UPLOAD_UNKNOWN: { status: 404, message: 'blob upload unknown to registry' },
  DIGEST_INVALID: { status: 400, message: 'provided digest did not match uploaded content' },
  MANIFEST_BLOB_UNKNOWN: { status: 404, message: 'manifest references a manifest or blob unknown to registry' },
  MANIFEST_INVALID: { status: 400, message: 'manifest invalid' },
  MANIFEST_UNKNOWN: { status: 404, message: 'manifest unknown to registry' },
  NAME_INVALID: { status: 400, message: 'invalid repository name' },
  NAME_UNKNOWN: { status: 404, message: 'repository name not known to registry' },
  PAGINATION_NUMBER_INVALID: { status: 400, message: 'invalid number of results requested' },
  SIZE_INVALID: { status: 400, message: 'provided length did not match content length' },
  UNAUTHORIZED: { status: 401, message: 'authentication required' },
  DENIED: { status: 403, message: 'requested access to the resource is denied' },
  UNSUPPORTED: { status: 405, message: 'the operation is unsupported' },
  TOOMANYREQUESTS: { status: 429, message: 'too many requests' },
  RANGE_INVALID: { status: 416, message: 'requested range not satisfiable' },
  UNAVAILABLE: { status: 503, message: 'service unavailable' },
  UNKNOWN: { status: 500, message: 'unknown error' },
} as const satisfies Record<string, { status: number; message: string }>;

export type OciErrorCode = keyof typeof OCI_ERROR_CODES;

/**
 * A protocol-level failure with a spec error code. Thrown by any layer for facts the client
 * must hear as such (bad name, unknown manifest); the HTTP layer turns it into the spec's
 * `{"errors":[…]}` body and status.
 */
export class OciError extends Error {
  override readonly name = 'OciError';
  readonly code: OciErrorCode;
  readonly detail: unknown;
  /** Extra response headers, e.g. `Content-Range` on a 416 or `Retry-After` on a 429. */
  readonly headers: Readonly<Record<string, string>>;
  /** What went wrong upstream, socket error included (`ECONNREFUSED`): for the access log, never sent. */
  readonly upstreamFailure: string | undefined;

  constructor(
    code: OciErrorCode,
    message?: string,
    options: { detail?: unknown; cause?: unknown; headers?: Record<string, string>; upstreamFailure?: string | undefined } = {},
  ) {
    super(message ?? OCI_ERROR_CODES[code].message, { cause: options.cause });
    this.code = code;
    this.detail = options.detail;
    this.headers = options.headers ?? {};
    this.upstreamFailure = options.upstreamFailure;
  }

  get status(): number {
    return OCI_ERROR_CODES[this.code].status;
  }
}
