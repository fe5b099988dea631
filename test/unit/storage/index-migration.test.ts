import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { SCHEMA_V1 } from '../../../src/storage/index-schema.js';
import { createMetadataIndex } from '../../../src/storage/metadata-index.js';

describe('index schema migration', () => {
  it('brings a v1 index to v2: links keep their rows and count as linked at 0', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'pullthrough-migrate-'));
    try {
      const file = path.join(dir, 'index.db');
      const digest = `sha256:${'c'.repeat(64)}`;
      const old = new Database(file);
      old.exec(SCHEMA_V1);
      old.pragma('user_version = 1');
      old.prepare("INSERT INTO content (digest, size, media_type, kind, created_at, last_access_at) VALUES (?, 1, NULL, 'blob', 1, 1)").run(digest);
      old.prepare("INSERT INTO repository_content (upstream, repository, digest) VALUES ('docker.io', 'library/app', ?)").run(digest);
      old.close();

      const index = createMetadataIndex({ path: file }, { now: () => 5_000 });
      const link = { upstream: 'docker.io', repository: 'library/app' };
      assert.equal(index.linkedAt(link, digest), 0);
      index.linkRepository({ upstream: 'docker.io', repository: 'library/other' }, digest);
      assert.equal(index.linkedAt({ upstream: 'docker.io', repository: 'library/other' }, digest), 5_000);
      index.close();
      const reopened = new Database(file);
      assert.equal(reopened.pragma('user_version', { simple: true }), 2);
      reopened.close();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
