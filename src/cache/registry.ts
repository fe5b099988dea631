import type { Writable } from 'node:stream';
import type { Credentials } from '../config/credentials.js';
import type { Digest } from '../oci/digest.js';
import type { ManifestReference, RepositoryRequest } from '../oci/reference.js';
import type { ByteRange } from '../storage/blob-store.js';

export type { ByteRange };

/** Where an answer came from, for metrics and logs. */
export type Source = 'cache' | 'upstream';

/**
 * How the cache answered: from disk (`hit`), after a fill (`miss`), by joining a fill already
 * running (`joined`), after the upstream confirmed a tag (`revalidated`), or from disk because
 * the upstream could not confirm it (`stale`).
 */
export type LookupResult = 'hit' | 'miss' | 'joined' | 'revalidated' | 'stale';

export interface ManifestResult {
  readonly digest: string;
  readonly mediaType: string;
  readonly size: number;
  /** The exact bytes; absent for HEAD answers that did not need them. */
  readonly bytes: Buffer | undefined;
  readonly source: Source;
  readonly result: LookupResult;
  /** The upstream host the request was routed to. */
  readonly upstream: string;
  /** Set when a cached answer is served because the upstream could not revalidate it. */
  readonly staleWarning?: string | undefined;
}

export interface BlobResult {
  readonly digest: string;
  /** Unknown only while a fill from an upstream that sent no Content-Length is running. */
  readonly size: number | undefined;
  readonly source: Source;
  readonly result: LookupResult;
  readonly upstream: string;
  /** Sends the bytes (all, or one range). Absent for HEAD. */
  readonly send: BlobSender | undefined;
}

/**
 * Writes a blob's bytes (all, or one range) into `dest` without ending it; resolves to the count
 * once `dest` took them all, rejects when the source fails or `dest` goes away.
 */
export type BlobSender = (dest: Writable, options?: { range?: ByteRange | undefined; onBytes?: (bytes: number) => void }) => Promise<number>;

/** A referrers answer (distribution-spec "Listing Referrers"): always an image index, maybe empty. */
export interface ReferrersResult {
  /** The image index to send, already filtered. */
  readonly bytes: Buffer;
  /** True when `artifactType` filtering was applied (the answer then carries OCI-Filters-Applied). */
  readonly isFiltered: boolean;
  readonly source: Source;
  readonly result: LookupResult;
  readonly upstream: string;
  readonly staleWarning?: string | undefined;
}

export interface Page<T> {
  readonly items: readonly T[];
  readonly hasMore: boolean;
}

export interface PageOptions {
  readonly n?: number | undefined;
  readonly last?: string | undefined;
}

export interface ReadOptions {
  readonly method: 'GET' | 'HEAD';
  readonly signal?: AbortSignal | undefined;
  /** The requester's own credentials (Basic, or behind one of our tokens); absent: anonymous. */
  readonly credentials?: Credentials | undefined;
}

/**
 * The registry as the HTTP layer sees it. It cannot tell a cache hit from a miss: every answer
 * has the same shape. Protocol failures are OciErrors; upstream failures are UpstreamErrors.
 */
export interface Registry {
  getManifest(request: RepositoryRequest, reference: ManifestReference, options: ReadOptions & { accept: readonly string[] }): Promise<ManifestResult>;
  getBlob(request: RepositoryRequest, digest: Digest, options: ReadOptions): Promise<BlobResult>;
  /** Referrers of `subject` in the named repository; never "not found" (an empty index means none). */
  getReferrers(request: RepositoryRequest, subject: Digest, options: ReadOptions & { artifactType?: string | undefined }): Promise<ReferrersResult>;
  listTags(
    request: RepositoryRequest,
    options: PageOptions & { signal?: AbortSignal | undefined; credentials?: Credentials | undefined },
  ): Promise<Page<string> & { staleWarning?: string | undefined }>;
  listRepositories(options: PageOptions, credentials?: Credentials | undefined): Promise<Page<string>>;
}
