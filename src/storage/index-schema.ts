/** The index schema, versioned in `PRAGMA user_version`; a new version adds a migration step here. */
export const SCHEMA_VERSION = 2;

export const SCHEMA_V1 = `
CREATE TABLE content (
  digest TEXT PRIMARY KEY,
  size INTEGER NOT NULL,
  media_type TEXT,
  kind TEXT NOT NULL CHECK (kind IN ('blob', 'manifest')),
  created_at INTEGER NOT NULL,
  last_access_at INTEGER NOT NULL
) STRICT;
CREATE TABLE manifest_references (
  manifest TEXT NOT NULL REFERENCES content(digest) ON DELETE CASCADE,
  child TEXT NOT NULL,
  PRIMARY KEY (manifest, child)
) STRICT, WITHOUT ROWID;
CREATE INDEX manifest_references_child ON manifest_references(child);
CREATE TABLE repository_content (
  upstream TEXT NOT NULL,
  repository TEXT NOT NULL,
  digest TEXT NOT NULL REFERENCES content(digest) ON DELETE CASCADE,
  PRIMARY KEY (upstream, repository, digest)
) STRICT, WITHOUT ROWID;
CREATE INDEX repository_content_digest ON repository_content(digest);
CREATE TABLE public_repositories (
  upstream TEXT NOT NULL,
  repository TEXT NOT NULL,
  proven_at INTEGER NOT NULL,
  PRIMARY KEY (upstream, repository)
) STRICT, WITHOUT ROWID;
CREATE TABLE pins (
  upstream TEXT NOT NULL,
  repository TEXT NOT NULL,
  reference TEXT NOT NULL,
  pinned_at INTEGER NOT NULL,
  PRIMARY KEY (upstream, repository, reference)
) STRICT, WITHOUT ROWID;
CREATE TABLE tags (
  upstream TEXT NOT NULL,
  repository TEXT NOT NULL,
  tag TEXT NOT NULL,
  digest TEXT NOT NULL REFERENCES content(digest) ON DELETE CASCADE,
  media_type TEXT NOT NULL,
  checked_at INTEGER NOT NULL,
  pulls INTEGER NOT NULL DEFAULT 0,
  last_pulled_at INTEGER,
  PRIMARY KEY (upstream, repository, tag)
) STRICT, WITHOUT ROWID;
`;


/**
 * v2: when content was first linked to a repository. An anonymous proof older than the link does
 * not cover it (it may have been fetched with credentials after the repository turned private);
 * rows from v1 count as linked at 0, as they were served before.
 */
export const SCHEMA_V2 = `
ALTER TABLE repository_content ADD COLUMN linked_at INTEGER NOT NULL DEFAULT 0;
`;
