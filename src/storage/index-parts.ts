import type { ContentRecord, ImageSummary, RepositoryRecord, TagRecord } from './index-records.js';

/**
 * The parts of the SQLite index, one interface each, all over one database
 * (metadata-index.ts): a module depends on the part it uses, and its tests fake only that.
 */

/** Committed content, and which repositories of which upstream it is content of. */
export interface ContentIndex {
  getContent(digest: string): ContentRecord | undefined;
  /** Indexes committed content and links it to the repository it was fetched for, in one transaction. */
  putContent(record: ContentRecord, link?: RepositoryRecord, references?: readonly string[]): void;
  /** Drops content rows (and what hangs off them) in one transaction. */
  deleteContent(digests: readonly string[]): void;
  allDigests(): string[];
  linkRepository(link: RepositoryRecord, digest: string): void;
  isLinked(link: RepositoryRecord, digest: string): boolean;
  /** When `digest` was first linked to the repository; undefined when it is not linked. */
  linkedAt(link: RepositoryRecord, digest: string): number | undefined;
  /** Whether this upstream delivered (or, for another of its repositories, vouched for) this digest. */
  isHeldBy(upstream: string, digest: string): boolean;
  listRepositories(): RepositoryRecord[];
  /** Notes a read; written in batches by {@link flushAccess}, never on the request path. */
  recordAccess(digest: string): void;
  /** Writes the reads and pulls noted since the last flush. */
  flushAccess(): void;
}

/** Where tags pointed when the upstream last said so (and reserved rows: referrers answers). */
export interface TagIndex {
  getTag(link: RepositoryRecord, tag: string): TagRecord | undefined;
  putTag(link: RepositoryRecord, tag: string, record: TagRecord): void;
  touchTag(link: RepositoryRecord, tag: string, checkedAt: number): void;
  deleteTag(link: RepositoryRecord, tag: string): void;
  listTags(link: RepositoryRecord): string[];
  /** Notes a pull of a tag; batched like {@link ContentIndex.recordAccess}. */
  recordPull(link: RepositoryRecord, tag: string): void;
}

/** Tags and digests kept through eviction (see README). */
export interface PinIndex {
  pin(link: RepositoryRecord, reference: string): void;
  unpin(link: RepositoryRecord, reference: string): boolean;
  isPinned(link: RepositoryRecord, reference: string): boolean;
}

/** The anonymous access proofs upstreams gave (credential proofs live in memory: access-policy.ts). */
export interface AccessProofIndex {
  /** Records that the upstream served this repository to an anonymous request, now. */
  markPublic(link: RepositoryRecord): void;
  /** The upstream refused an anonymous request for it: the repository is not public (any more). */
  unmarkPublic(link: RepositoryRecord): void;
  /** When the upstream last served this repository to an anonymous request; undefined: never (or not since it refused). */
  publicProvenAt(link: RepositoryRecord): number | undefined;
  /**
   * The latest such proof among the repositories of `upstream` that hold this digest; with
   * `coveringOnly`, among those whose proof is no older than the digest's link (it was readable
   * anonymously then, not only fetched with credentials since).
   */
  publicContentProvenAt(upstream: string, digest: string, options?: { coveringOnly?: boolean }): number | undefined;
}

/** Whole-cache views: what eviction and garbage collection plan over, listings, the status page. */
export interface ReportIndex {
  /** Everything eviction plans over: objects with size and last access, references, pinned digests. */
  evictionInputs(): { nodes: Array<{ digest: string; size: number; lastAccessAt: number }>; edges: Array<{ parent: string; child: string }>; pinned: Set<string> };
  /** Blobs no manifest references, last read before `before`. */
  unreferencedBlobs(before: number): string[];
  /** Tags with what they point at, for listings. */
  listTagsDetailed(): Array<{ upstream: string; repository: string; tag: string; digest: string; pulls: number; lastPulledAt: number | null }>;
  /** Total bytes and objects indexed. */
  stats(): { bytes: number; objects: number };
  /** Cached tags, most pulled or largest first. */
  topImages(order: 'pulls' | 'size', limit: number): ImageSummary[];
}
