import type { Writable } from 'node:stream';
import type { Credentials } from '../config/credentials.js';
import type { Digest } from '../oci/digest.js';
import type { ManifestReference, RepositoryRequest } from '../oci/reference.js';
import type { ByteRange } from '../storage/blob-store.js';
import type { RepositoryRecord } from '../storage/metadata-index.js';
import type { Route } from '../upstream/upstream-router.js';

export type { ByteRange };

/** Where an answer came from, for metrics and logs (`peer`: another member of the cluster, README "Cluster"). */
export type Source = 'cache' | 'upstream' | 'peer';

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
  /** The exact bytes. */
  readonly bytes: Buffer;
  readonly source: Source;
  readonly result: LookupResult;
  /** The upstream host the request was routed to. */
  readonly upstream: string;
  /** Why a cached answer is served without the upstream's confirmation (it could not revalidate it, or is offline). */
  readonly staleBecause?: string | undefined;
}

export interface BlobResult {
  readonly digest: string;
  /** Unknown only while a fill from an upstream that sent no Content-Length is running. */
  readonly size: number | undefined;
  readonly source: Source;
  readonly result: LookupResult;
  readonly upstream: string;
}

/** A blob to read: {@link BlobResult} with its bytes. */
export interface BlobContent extends BlobResult {
  /** Sends the bytes (all, or one range); call it at most once. */
  readonly send: BlobSender;
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
  readonly staleBecause?: string | undefined;
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
  /** The requester's own credentials (Basic, or behind one of our tokens); absent: anonymous. */
  readonly credentials?: Credentials | undefined;
}

export type TagPage = Page<string> & { readonly staleBecause?: string | undefined };

/** The reads of a registry, of a repository named by `Target`. */
export interface RegistryReads<Target> {
  getManifest(target: Target, reference: ManifestReference, options: ReadOptions & { accept: readonly string[] }): Promise<ManifestResult>;
  /** A blob's size and where it came from, without its bytes (an uncached one is asked of the upstream, not filled). */
  statBlob(target: Target, digest: Digest, options: ReadOptions): Promise<BlobResult>;
  getBlob(target: Target, digest: Digest, options: ReadOptions): Promise<BlobContent>;
  /** Referrers of `subject` in the named repository; never "not found" (an empty index means none). */
  getReferrers(target: Target, subject: Digest, options: ReadOptions & { artifactType?: string | undefined }): Promise<ReferrersResult>;
  listTags(target: Target, options: PageOptions & ReadOptions): Promise<TagPage>;
}

/**
 * The registry as the HTTP layer sees it (distribution's `distribution.Repository` reads), by
 * the name a client asked for: it cannot tell a cache hit from a miss, every answer has the same
 * shape, and every failure is an OciError (upstream failures are mapped in client-errors.ts).
 */
export interface Registry extends RegistryReads<RepositoryRequest> {
  listRepositories(options: PageOptions, credentials?: Credentials | undefined): Promise<Page<string>>;
}

/**
 * The same reads for a request already routed (the upstream and the repository as it knows
 * it): what the local registry and the proxy decorating it implement. See src/README.md.
 */
export interface RoutedRegistry extends RegistryReads<Route> {
  /** Every repository of every upstream this requester may see; `publicName` names them for clients. */
  listRepositories(options: PageOptions, credentials: Credentials | undefined, publicName: (link: RepositoryRecord) => string): Promise<Page<string>>;
}
