import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import request from 'supertest';
import { startFakeUpstream, type FakeUpstream } from '../fakes/fake-upstream.js';
import { runCli } from '../helpers/cli.js';
import { blobsOf, makeImage } from '../helpers/images.js';
import { startPullthrough } from '../helpers/pullthrough.js';

/** The CLI as a new user meets it: config mistakes, and storage commands on a cache that may not exist. */
describe('the command line', { timeout: 180_000 }, () => {
  let work: string;
  let upstream: FakeUpstream;
  const image = makeImage({ layerSizes: [2_000] });

  before(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'pullthrough-cli-'));
    upstream = await startFakeUpstream();
    upstream.addImage('library/app', '1.0', image);
  });
  after(async () => {
    await upstream.close();
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

  it('read-only commands never create a cache; every storage command names the root it looked at', async () => {
    const cwd = await mkdtemp(path.join(work, 'fresh-'));
    const env = { PATH: process.env['PATH'] };
    for (const args of [['ls'], ['ls', '--json'], ['stats'], ['verify'], ['gc'], ['pin', 'app:1'], ['unpin', 'app:1'], ['rm', 'app:1']]) {
      const result = await runCli(args, { cwd, env });
      assert.match(result.stderr, new RegExp(`no cache at ${path.join(cwd, 'storage').replace(/[/.]/g, '\\$&')}`), `${args.join(' ')}: ${result.stderr}`);
      assert.equal(result.code, ['pin', 'unpin', 'rm'].includes(args[0]!) ? 1 : 0, `${args.join(' ')}: ${result.stderr}`);
      assert.equal(existsSync(path.join(cwd, 'storage')), false, `${args.join(' ')} created ./storage`);
    }
    assert.equal((await runCli(['ls', '--json'], { cwd, env })).stdout, '[]\n');
  });

  describe('on a cache with one image', () => {
    let file: string;
    let root: string;
    before(async () => {
      root = path.join(work, 'cache');
      file = path.join(work, 'cache.yaml');
      await writeFile(file, `logLevel: warn\nstorage: { root: ${root} }\nupstreams:\n  - { host: docker.io, url: "${upstream.url}", default: true }\n`);
      const server = await startPullthrough({ upstreams: [{ host: 'docker.io', url: upstream.url, default: true }], storageRoot: root });
      await request(server.url).get('/v2/library/app/manifests/1.0').expect(200);
      for (const blob of blobsOf(image)) await request(server.url).get(`/v2/library/app/blobs/${blob.digest}`).expect(200);
      await server.close({ keepStorage: true });
    });

    it('stats and verify say which root they read', async () => {
      assert.match((await runCli(['stats', '--config', file])).stdout, new RegExp(`^${root.replace(/[/.]/g, '\\$&')}: `));
      assert.match((await runCli(['verify', '--config', file])).stdout, new RegExp(`in ${root.replace(/[/.]/g, '\\$&')}: all intact`));
    });

    it('pin of an image that is not cached says so, points at preload and pins nothing', async () => {
      const result = await runCli(['pin', '--config', file, 'nosuch:9']);
      assert.equal(result.code, 1);
      assert.match(result.stderr, /docker\.io\/library\/nosuch:9 is not cached/);
      assert.match(result.stderr, /pullthrough preload docker\.io\/library\/nosuch:9/);
      assert.equal((await runCli(['unpin', '--config', file, 'nosuch:9'])).code, 1, 'nothing was pinned');
    });

    it('rm of a pinned image refuses without --force', async () => {
      assert.equal((await runCli(['pin', '--config', file, 'app:1.0'])).code, 0);
      const refused = await runCli(['rm', '--config', file, 'app:1.0']);
      assert.equal(refused.code, 1);
      assert.match(refused.stderr, /docker\.io\/library\/app:1\.0 is pinned: unpin it first, or rm --force/);
      assert.match((await runCli(['ls', '--config', file])).stdout, /library\/app:1\.0/);
      const forced = await runCli(['rm', '--force', '--config', file, 'app:1.0']);
      assert.equal(forced.code, 0, forced.stderr);
      assert.match(forced.stdout, /removed docker\.io\/library\/app:1\.0/);
    });
  });
});
