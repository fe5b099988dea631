import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import request from 'supertest';
import { startFakeUpstream, type FakeUpstream } from '../fakes/fake-upstream.js';
import { makeImage, type ImageManifest } from '../helpers/images.js';
import { startPullthrough } from '../helpers/pullthrough.js';

describe('restart', () => {
  let upstream: FakeUpstream;
  let image: ImageManifest;
  let root: string;

  before(async () => {
    upstream = await startFakeUpstream();
    image = makeImage({ layerSizes: [4096, 8192] });
    upstream.addImage('library/app', '1.0', image);
    root = await mkdtemp(path.join(tmpdir(), 'pullthrough-restart-'));
  });
  after(async () => {
    await upstream.close();
    await rm(root, { recursive: true, force: true });
  });

  it('keeps what it cached, purges temp files and forgets rows whose file is gone', async () => {
    const spec = { upstreams: [{ host: 'docker.io', url: upstream.url, default: true }], storageRoot: root };
    const first = await startPullthrough(spec);
    await request(first.url).get('/v2/library/app/manifests/1.0').expect(200);
    for (const blob of [image.config, ...image.layers]) await request(first.url).get(`/v2/library/app/blobs/${blob.digest}`).expect(200);
    await first.close({ keepStorage: true });

    // What a crash leaves: a half-written temp file, and a blob file lost behind the index's back.
    await writeFile(path.join(root, 'tmp', 'leftover'), 'partial');
    const lost = image.layers[0]!;
    const lostHex = lost.digest.slice(7);
    await rm(path.join(root, 'blobs', 'sha256', lostHex.slice(0, 2), lostHex));

    const second = await startPullthrough(spec);
    try {
      assert.deepEqual(await readdir(path.join(root, 'tmp')), []);
      upstream.requests.length = 0;
      await request(second.url).get('/v2/library/app/manifests/1.0').expect(200);
      await request(second.url).get(`/v2/library/app/blobs/${image.config.digest}`).expect(200);
      assert.equal(upstream.requests.length, 0, 'cached content is served after a restart');
      await request(second.url).get(`/v2/library/app/blobs/${lost.digest}`).expect(200);
      assert.equal(upstream.count('GET', `/v2/library/app/blobs/${lost.digest}`), 1, 'the lost blob is fetched again');
      assert.ok(existsSync(path.join(root, 'index.db')));
    } finally {
      await second.close();
    }
  });
});
