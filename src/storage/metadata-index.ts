import Database from 'better-sqlite3';
import { SCHEMA_V1, SCHEMA_V2, SCHEMA_VERSION } from './index-schema.js';
import type { ContentRecord, ImageSummary, RepositoryRecord, TagRecord } from './index-records.js';
import { byName, sizeTags } from './tag-sizes.js';
import type { AccessProofIndex, ContentIndex, PinIndex, ReportIndex, TagIndex } from './index-parts.js';

export type { ContentRecord, ImageSummary, RepositoryRecord, TagRecord };
export type { AccessProofIndex, ContentIndex, PinIndex, ReportIndex, TagIndex };

/**
 * The SQLite index: the small interfaces of index-parts.ts over one database, so each module
 * depends on the part it uses. SQLite owns metadata and the blob store owns bytes: a row is
 * written only after its file has been committed, so every row names a file that was verified.
 * Synchronous (better-sqlite3): each call is a short indexed statement.
 */
export interface MetadataIndex extends ContentIndex, TagIndex, PinIndex, AccessProofIndex, ReportIndex {
  /** Throws when the database cannot answer a query. */
  ping(): void;
  /** Runs `work` (synchronous calls of this index) in one transaction: all of its writes land, or none. */
  transaction<T>(work: () => T): T;
  close(): void;
}

/**
 * Opens (creating or migrating) the index at `path`, or an in-memory one for `:memory:`.
 * @throws Error when the file is from a newer pullthrough (its schema version is higher).
 */
export function createMetadataIndex(options: { path: string }, deps: { now: () => number }): MetadataIndex {
  const db = new Database(options.path);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.pragma('foreign_keys = ON');
  // preload and import may write while a server runs on the same storage: wait, do not fail.
  db.pragma('busy_timeout = 5000');
  // better-sqlite3 builds SQLite with a 16 MiB page cache; SQLite's own 2 MiB is plenty for point
  // lookups whose pages the OS caches anyway, and keeps a large index out of the process's RSS.
  db.pragma('cache_size = -2000');
  const version = db.pragma('user_version', { simple: true }) as number;
  if (version > SCHEMA_VERSION) {
    db.close();
    throw new Error(`index ${options.path} has schema version ${version}; this pullthrough knows up to ${SCHEMA_VERSION}`);
  }
  if (version < SCHEMA_VERSION) {
    db.transaction(() => {
      if (version < 1) db.exec(SCHEMA_V1);
      if (version < 2) db.exec(SCHEMA_V2);
      db.pragma(`user_version = ${SCHEMA_VERSION}`);
    })();
  }
  return new SqliteMetadataIndex(db, deps.now);
}

interface ContentRow {
  digest: string;
  size: number;
  media_type: string | null;
  kind: 'blob' | 'manifest';
}

class SqliteMetadataIndex implements MetadataIndex {
  readonly #db: Database.Database;
  readonly #now: () => number;
  readonly #pendingAccess = new Map<string, number>();
  readonly #pendingPulls = new Map<string, { link: RepositoryRecord; tag: string; count: number; at: number }>();
  readonly #addPulls;
  readonly #pin;
  readonly #isPinned;
  readonly #isLinked;
  readonly #unpin;
  readonly #evictionNodes;
  readonly #evictionEdges;
  readonly #pinnedDigests;
  readonly #unreferenced;
  readonly #tagsDetailed;
  readonly #markPublic;
  readonly #unmarkPublic;
  readonly #publicProvenAt;
  readonly #publicContentProvenAt;
  readonly #publicContentCoveredAt;
  readonly #isHeldBy;
  readonly #linkedAt;
  readonly #stats;
  readonly #allTags;
  readonly #allReferences;
  readonly #allSizes;
  readonly #getContent;
  readonly #upsertContent;
  readonly #insertReference;
  readonly #link;
  readonly #getTag;
  readonly #putTag;
  readonly #touchTag;
  readonly #deleteTag;
  readonly #listTags;
  readonly #listRepositories;
  readonly #touchContent;
  readonly #allDigests;
  readonly #deleteContent;

  constructor(db: Database.Database, now: () => number) {
    this.#db = db;
    this.#now = now;
    this.#getContent = db.prepare<[string], ContentRow>('SELECT digest, size, media_type, kind FROM content WHERE digest = ?');
    // A manifest that was first seen as a plain blob (GET /blobs/<manifest digest>) becomes a manifest.
    this.#upsertContent = db.prepare(
      `INSERT INTO content (digest, size, media_type, kind, created_at, last_access_at)
       VALUES (@digest, @size, @mediaType, @kind, @now, @now)
       ON CONFLICT (digest) DO UPDATE SET
         kind = CASE WHEN excluded.kind = 'manifest' THEN 'manifest' ELSE content.kind END,
         media_type = COALESCE(excluded.media_type, content.media_type),
         last_access_at = excluded.last_access_at`,
    );
    this.#insertReference = db.prepare('INSERT OR IGNORE INTO manifest_references (manifest, child) VALUES (?, ?)');
    // Only content we hold can be linked; a link to a fill still running is made when it commits.
    // The first link's time stays: it is when the content was first seen in the repository.
    this.#link = db.prepare('INSERT OR IGNORE INTO repository_content (upstream, repository, digest, linked_at) SELECT ?, ?, digest, ? FROM content WHERE digest = ?');
    this.#linkedAt = db.prepare<[string, string, string], number>('SELECT linked_at FROM repository_content WHERE upstream = ? AND repository = ? AND digest = ?').pluck();
    this.#getTag = db.prepare<[string, string, string], { digest: string; media_type: string; checked_at: number }>(
      'SELECT digest, media_type, checked_at FROM tags WHERE upstream = ? AND repository = ? AND tag = ?',
    );
    this.#putTag = db.prepare(
      `INSERT INTO tags (upstream, repository, tag, digest, media_type, checked_at) VALUES (?, ?, ?, ?, ?, ?)
       ON CONFLICT (upstream, repository, tag) DO UPDATE SET
         digest = excluded.digest, media_type = excluded.media_type, checked_at = excluded.checked_at`,
    );
    this.#touchTag = db.prepare('UPDATE tags SET checked_at = ? WHERE upstream = ? AND repository = ? AND tag = ?');
    this.#deleteTag = db.prepare('DELETE FROM tags WHERE upstream = ? AND repository = ? AND tag = ?');
    this.#listTags = db.prepare<[string, string], { tag: string }>(
      'SELECT tag FROM tags WHERE upstream = ? AND repository = ? ORDER BY tag',
    );
    this.#listRepositories = db.prepare<[], { upstream: string; repository: string }>(
      'SELECT DISTINCT upstream, repository FROM repository_content ORDER BY upstream, repository',
    );
    this.#touchContent = db.prepare('UPDATE content SET last_access_at = MAX(last_access_at, ?) WHERE digest = ?');
    this.#allDigests = db.prepare<[], { digest: string }>('SELECT digest FROM content').pluck();
    this.#deleteContent = db.prepare('DELETE FROM content WHERE digest = ?');
    this.#addPulls = db.prepare(
      'UPDATE tags SET pulls = pulls + ?, last_pulled_at = MAX(COALESCE(last_pulled_at, 0), ?) WHERE upstream = ? AND repository = ? AND tag = ?',
    );
    this.#unpin = db.prepare('DELETE FROM pins WHERE upstream = ? AND repository = ? AND reference = ?');
    this.#evictionNodes = db.prepare<[], { digest: string; size: number; lastAccessAt: number }>('SELECT digest, size, last_access_at AS lastAccessAt FROM content');
    this.#evictionEdges = db.prepare<[], { parent: string; child: string }>('SELECT manifest AS parent, child FROM manifest_references');
    this.#pinnedDigests = db
      .prepare<[], { digest: string }>(
        `SELECT t.digest FROM pins p JOIN tags t ON t.upstream = p.upstream AND t.repository = p.repository AND t.tag = p.reference
         UNION SELECT reference AS digest FROM pins WHERE reference LIKE 'sha256:%' OR reference LIKE 'sha512:%'`,
      )
      .pluck();
    this.#unreferenced = db
      .prepare<[number], { digest: string }>(
        `SELECT c.digest FROM content c
          WHERE c.kind = 'blob' AND c.last_access_at < ?
            AND NOT EXISTS (SELECT 1 FROM manifest_references r WHERE r.child = c.digest)`,
      )
      .pluck();
    this.#tagsDetailed = db.prepare<[], { upstream: string; repository: string; tag: string; digest: string; pulls: number; lastPulledAt: number | null }>(
      'SELECT upstream, repository, tag, digest, pulls, last_pulled_at AS lastPulledAt FROM tags ORDER BY upstream, repository, tag',
    );
    this.#isLinked = db.prepare<[string, string, string], { one: number }>('SELECT 1 AS one FROM repository_content WHERE upstream = ? AND repository = ? AND digest = ?');
    this.#markPublic = db.prepare(
      `INSERT INTO public_repositories (upstream, repository, proven_at) VALUES (?, ?, ?)
       ON CONFLICT (upstream, repository) DO UPDATE SET proven_at = excluded.proven_at`,
    );
    this.#unmarkPublic = db.prepare('DELETE FROM public_repositories WHERE upstream = ? AND repository = ?');
    this.#publicProvenAt = db.prepare<[string, string], number>('SELECT proven_at FROM public_repositories WHERE upstream = ? AND repository = ?').pluck();
    const provenAt = (condition: string) =>
      db
        .prepare<[string, string], number | null>(
          `SELECT MAX(p.proven_at) FROM repository_content rc
             JOIN public_repositories p ON p.upstream = rc.upstream AND p.repository = rc.repository
            WHERE rc.digest = ? AND rc.upstream = ?${condition}`,
        )
        .pluck();
    this.#publicContentProvenAt = provenAt('');
    this.#publicContentCoveredAt = provenAt(' AND rc.linked_at <= p.proven_at');
    this.#isHeldBy = db.prepare<[string, string], number>('SELECT 1 FROM repository_content WHERE digest = ? AND upstream = ? LIMIT 1').pluck();
    this.#pin = db.prepare('INSERT OR IGNORE INTO pins (upstream, repository, reference, pinned_at) VALUES (?, ?, ?, ?)');
    this.#isPinned = db.prepare<[string, string, string], { one: number }>('SELECT 1 AS one FROM pins WHERE upstream = ? AND repository = ? AND reference = ?');
    this.#stats = db.prepare<[], { bytes: number | null; objects: number }>('SELECT SUM(size) AS bytes, COUNT(*) AS objects FROM content');
    // What topImages walks: three plain scans, instead of a recursive query per tag. A real tag has
    // no ':' (distribution-spec); rows that do hold other answers (referrers) and are not images.
    this.#allTags = db.prepare<[], { upstream: string; repository: string; tag: string; digest: string; pulls: number; lastPulledAt: number | null }>(
      "SELECT upstream, repository, tag, digest, pulls, last_pulled_at AS lastPulledAt FROM tags WHERE instr(tag, ':') = 0",
    );
    this.#allReferences = db.prepare<[], { manifest: string; child: string }>('SELECT manifest, child FROM manifest_references');
    this.#allSizes = db.prepare<[], { digest: string; size: number }>('SELECT digest, size FROM content');
  }

  getContent(digest: string): ContentRecord | undefined {
    const row = this.#getContent.get(digest);
    return row && { digest: row.digest, size: row.size, mediaType: row.media_type, kind: row.kind };
  }

  transaction<T>(work: () => T): T {
    return this.#db.transaction(work)();
  }

  putContent(record: ContentRecord, link?: RepositoryRecord, references: readonly string[] = []): void {
    this.#db.transaction(() => {
      this.#upsertContent.run({ ...record, now: this.#now() });
      for (const child of references) this.#insertReference.run(record.digest, child);
      if (link) this.#link.run(link.upstream, link.repository, this.#now(), record.digest);
    })();
  }

  linkRepository(link: RepositoryRecord, digest: string): void {
    this.#link.run(link.upstream, link.repository, this.#now(), digest);
  }

  linkedAt(link: RepositoryRecord, digest: string): number | undefined {
    return this.#linkedAt.get(link.upstream, link.repository, digest);
  }

  isLinked(link: RepositoryRecord, digest: string): boolean {
    return this.#isLinked.get(link.upstream, link.repository, digest) !== undefined;
  }

  isHeldBy(upstream: string, digest: string): boolean {
    return this.#isHeldBy.get(digest, upstream) !== undefined;
  }

  markPublic(link: RepositoryRecord): void {
    this.#markPublic.run(link.upstream, link.repository, this.#now());
  }

  unmarkPublic(link: RepositoryRecord): void {
    this.#unmarkPublic.run(link.upstream, link.repository);
  }

  publicProvenAt(link: RepositoryRecord): number | undefined {
    return this.#publicProvenAt.get(link.upstream, link.repository);
  }

  publicContentProvenAt(upstream: string, digest: string, { coveringOnly = false } = {}): number | undefined {
    return (coveringOnly ? this.#publicContentCoveredAt : this.#publicContentProvenAt).get(digest, upstream) ?? undefined;
  }

  getTag(link: RepositoryRecord, tag: string): TagRecord | undefined {
    const row = this.#getTag.get(link.upstream, link.repository, tag);
    return row && { digest: row.digest, mediaType: row.media_type, checkedAt: row.checked_at };
  }

  putTag(link: RepositoryRecord, tag: string, record: TagRecord): void {
    this.#putTag.run(link.upstream, link.repository, tag, record.digest, record.mediaType, record.checkedAt);
  }

  touchTag(link: RepositoryRecord, tag: string, checkedAt: number): void {
    this.#touchTag.run(checkedAt, link.upstream, link.repository, tag);
  }

  deleteTag(link: RepositoryRecord, tag: string): void {
    this.#deleteTag.run(link.upstream, link.repository, tag);
  }

  listTags(link: RepositoryRecord): string[] {
    return this.#listTags.all(link.upstream, link.repository).map((row) => row.tag);
  }

  listRepositories(): RepositoryRecord[] {
    return this.#listRepositories.all();
  }

  recordAccess(digest: string): void {
    this.#pendingAccess.set(digest, this.#now());
  }

  recordPull(link: RepositoryRecord, tag: string): void {
    const key = `${link.upstream}\0${link.repository}\0${tag}`;
    const pending = this.#pendingPulls.get(key);
    if (pending) {
      pending.count += 1;
      pending.at = this.#now();
    } else {
      this.#pendingPulls.set(key, { link, tag, count: 1, at: this.#now() });
    }
  }

  flushAccess(): void {
    if (this.#pendingAccess.size === 0 && this.#pendingPulls.size === 0) return;
    const accesses = [...this.#pendingAccess];
    const pulls = [...this.#pendingPulls.values()];
    this.#pendingAccess.clear();
    this.#pendingPulls.clear();
    this.#db.transaction(() => {
      for (const [digest, at] of accesses) this.#touchContent.run(at, digest);
      for (const { link, tag, count, at } of pulls) this.#addPulls.run(count, at, link.upstream, link.repository, tag);
    })();
  }

  pin(link: RepositoryRecord, reference: string): void {
    this.#pin.run(link.upstream, link.repository, reference, this.#now());
  }

  unpin(link: RepositoryRecord, reference: string): boolean {
    return this.#unpin.run(link.upstream, link.repository, reference).changes > 0;
  }

  evictionInputs() {
    return {
      nodes: this.#evictionNodes.all(),
      edges: this.#evictionEdges.all(),
      pinned: new Set(this.#pinnedDigests.all() as unknown as string[]),
    };
  }

  unreferencedBlobs(before: number): string[] {
    return this.#unreferenced.all(before) as unknown as string[];
  }

  listTagsDetailed() {
    return this.#tagsDetailed.all();
  }

  isPinned(link: RepositoryRecord, reference: string): boolean {
    return this.#isPinned.get(link.upstream, link.repository, reference) !== undefined;
  }

  stats(): { bytes: number; objects: number } {
    const row = this.#stats.get();
    return { bytes: row?.bytes ?? 0, objects: row?.objects ?? 0 };
  }

  /** Each tag sized by {@link sizeTags} over one scan of tags, references and content. */
  topImages(order: 'pulls' | 'size', limit: number): ImageSummary[] {
    const rows = sizeTags(this.#allTags.all(), this.#allReferences.iterate(), this.#allSizes.iterate());
    const key = order === 'pulls' ? (i: ImageSummary) => i.pulls : (i: ImageSummary) => i.sizeBytes;
    return rows.sort((a, b) => key(b) - key(a) || byName(a, b)).slice(0, limit);
  }

  allDigests(): string[] {
    return this.#allDigests.all() as unknown as string[];
  }

  deleteContent(digests: readonly string[]): void {
    this.#db.transaction(() => {
      for (const digest of digests) this.#deleteContent.run(digest);
    })();
  }

  ping(): void {
    this.#db.prepare('SELECT 1').get();
  }

  close(): void {
    this.flushAccess();
    this.#db.close();
  }
}
