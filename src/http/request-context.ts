import type { Request, Response } from 'express';
import { checkRepositoryRequest, type RepositoryRequest } from '../oci/reference.js';
import type { LookupResult, Source } from '../cache/registry.js';
import type { Credentials } from '../config/credentials.js';

/** What the access log and metrics learn about a request from its route. */
export interface RequestLabels {
  kind: 'base' | 'manifest' | 'blob' | 'referrers' | 'tags' | 'catalog' | 'metrics' | 'health' | 'status' | 'token' | 'admin' | 'peer' | 'other';
  source?: Source;
  result?: LookupResult;
  /** The upstream host the request was routed to. */
  upstream?: string;
  /** Body bytes handed to the connection so far (manifests and blobs). */
  sentBytes?: number;
  /** The body's declared length, when it has one. */
  expectedBytes?: number | undefined;
  /** Why the upstream failed this request, for the access log only (never the client's body). */
  upstreamError?: string;
}

/** The requester's own credentials, resolved once per request by the auth middleware. */
export function requesterCredentials(res: Response): Credentials | undefined {
  return (res.locals as { credentials?: Credentials }).credentials;
}

/** The per-request labels; routes fill them in, the access log reads them. */
export function labels(res: Response): RequestLabels {
  const locals = res.locals as { labels?: RequestLabels };
  locals.labels ??= { kind: 'other' };
  return locals.labels;
}

/**
 * The repository of `/v2/<name>/…` with containerd's `ns=` mirror parameter, when sent.
 * @throws OciError NAME_INVALID for a malformed registry host in either.
 */
export function repositoryRequest(req: Request, name: string): RepositoryRequest {
  const ns = req.query['ns'];
  return checkRepositoryRequest({ name, namespace: typeof ns === 'string' ? ns : undefined });
}

/** Headers every registry answer carries (distribution-spec "API Version Check"). */
export function setApiVersion(res: Response): void {
  res.setHeader('docker-distribution-api-version', 'registry/2.0');
}

/** The RFC 9111 §5.5 style Warning for an answer the upstream did not confirm (stale, or offline). */
export function staleWarning(reason: string): string {
  return `111 pullthrough "${reason.replace(/["\\]/g, "'")}"`;
}
