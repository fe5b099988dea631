/** The rows of the index as its callers see them. */

/** A committed file: a blob or a manifest (they share the content-addressed tree). */
export interface ContentRecord {
  readonly digest: string;
  readonly size: number;
  readonly mediaType: string | null;
  readonly kind: 'blob' | 'manifest';
}

/** Where a tag pointed when it was last fetched or revalidated. */
export interface TagRecord {
  readonly digest: string;
  readonly mediaType: string;
  /** When the upstream last confirmed this mapping (ms since epoch). */
  readonly checkedAt: number;
}

/** A cached tag with what it takes on disk and how often it was pulled (for the status page). */
export interface ImageSummary {
  readonly upstream: string;
  readonly repository: string;
  readonly tag: string;
  readonly digest: string;
  /** Bytes on disk of the manifest and everything it references that is cached. */
  readonly sizeBytes: number;
  readonly pulls: number;
  readonly lastPulledAt: number | null;
}

/** A repository in the cache, by upstream host. */
export interface RepositoryRecord {
  readonly upstream: string;
  readonly repository: string;
}
