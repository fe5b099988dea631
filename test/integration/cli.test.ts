import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { runCli } from '../helpers/cli.js';

/** The CLI as a new user meets it: config mistakes, and storage commands on a cache that may not exist. */
describe('the command line', { timeout: 180_000 }, () => {
  let work: string;

  before(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'pullthrough-cli-'));
  });
  after(async () => {
    await rm(work, { recursive: true, force: true });
  });

  it('lists every config problem by key path and exits 78, a URL without a scheme included', async () => {
    const file = path.join(work, 'bad.yaml');
    await writeFile(file, 'upstreams:\n  - host: docker.io\n    url: registry-1.docker.io\n    default: true\n  - host: ghcr.io\n    url: https://ghcr.io\n    default: true\n    tagTtl: soon\n');
    const result = await runCli(['serve', '--config', file, '--check-config']);
    assert.equal(result.code, 78, result.stderr);
    assert.match(result.stderr, /upstreams\[0\]\.url: expected an http:\/\/ or https:\/\/ URL/);
    assert.match(result.stderr, /upstreams\[1\]\.tagTtl: expected a duration/);
    assert.match(result.stderr, /upstreams\[1\]\.default: only one upstream may be the default/);
    assert.doesNotMatch(result.stderr, /TypeError|\n\s+at /, 'no stack trace');
  });

  it('--check-config prints durations and sizes as written', async () => {
    const file = path.join(work, 'good.yaml');
    await writeFile(file, `storage: { root: ${path.join(work, 'unused')}, maxBytes: 50GiB }\nupstreams:\n  - { host: docker.io, url: "https://registry-1.docker.io", default: true, tagTtl: 90s }\n`);
    const result = await runCli(['serve', '--config', file, '--check-config']);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /gcInterval: 1h\n/);
    assert.match(result.stdout, /maxBytes: 50GiB\n/);
    assert.match(result.stdout, /tagTtl: 90s\n/);
    assert.doesNotMatch(result.stdout, /3600000/);
  });
});
