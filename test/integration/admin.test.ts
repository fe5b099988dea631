import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import request from 'supertest';
import { createApp } from '../../src/app.js';
import { parseConfig } from '../../src/config/load-config.js';
import { createSilentLogger } from '../../src/logger.js';
import { startFakeUpstream, type FakeUpstream } from '../fakes/fake-upstream.js';
import { blobsOf, makeImage } from '../helpers/images.js';
import { waitUntil } from '../helpers/processes.js';
import { metricValue, startPullthrough, type RunningPullthrough } from '../helpers/pullthrough.js';

const TOKEN = 'admin-token-0123456789';

describe('admin API', () => {
  let upstream: FakeUpstream;
  let cache: RunningPullthrough;
  const image = makeImage({ layerSizes: [5_000] });

  before(async () => {
    upstream = await startFakeUpstream();
    upstream.addImage('library/app', '1.0', image);
    cache = await startPullthrough({ upstreams: [{ host: 'docker.io', url: upstream.url, default: true }], admin: { token: TOKEN } });
    await request(cache.url).get('/v2/library/app/manifests/1.0').expect(200);
    for (const blob of blobsOf(image)) await request(cache.url).get(`/v2/library/app/blobs/${blob.digest}`).expect(200);
  });
  after(async () => {
    await cache.close();
    await upstream.close();
  });

  const admin = (method: 'get' | 'put' | 'delete' | 'post', url: string) => request(cache.url)[method](`/_pullthrough/admin${url}`).set('authorization', `Bearer ${TOKEN}`);

  it('is off without a token, and refuses a wrong one', async () => {
    const off = await startPullthrough({ upstreams: [{ host: 'docker.io', url: upstream.url, default: true }] });
    try {
      await request(off.url).get('/_pullthrough/admin/images').set('authorization', `Bearer ${TOKEN}`).expect(404);
    } finally {
      await off.close();
    }
    await request(cache.url).get('/_pullthrough/admin/images').expect(401);
    await request(cache.url).get('/_pullthrough/admin/images').set('authorization', 'Bearer admin-token-0123456780').expect(401);
  });

  it('lists, pins, unpins and reports', async () => {
    const list = await admin('get', '/images').expect(200);
    assert.equal(list.body.images[0].image, 'docker.io/library/app:1.0');
    assert.equal(list.body.images[0].isPinned, false);
    await admin('put', '/pins?image=library/app:1.0').expect(204);
    assert.equal((await admin('get', '/images').expect(200)).body.images[0].isPinned, true);
    assert.equal((await admin('get', '/stats').expect(200)).body.pinned, 1);
    await admin('delete', '/pins?image=library/app:1.0').expect(204);
    await admin('delete', '/pins?image=library/app:1.0').expect(404);
  });

  it('verifies, finds a flipped byte, repairs, and the next pull fetches it clean', async () => {
    assert.deepEqual((await admin('post', '/verify').expect(200)).body.corrupt, []);
    const layer = image.layers[0]!;
    const file = path.join(cache.storageRoot, 'blobs', 'sha256', layer.digest.slice(7, 9), layer.digest.slice(7));
    const bytes = await readFile(file);
    bytes[100] = (bytes[100] ?? 0) ^ 1;
    await writeFile(file, bytes);
    assert.deepEqual((await admin('post', '/verify?repair=true').expect(200)).body.corrupt, [layer.digest]);
    const again = await request(cache.url).get(`/v2/library/app/blobs/${layer.digest}`).buffer(true).parse((r, cb) => {
      const chunks: Buffer[] = [];
      r.on('data', (c: Buffer) => chunks.push(c));
      r.on('end', () => cb(null, Buffer.concat(chunks)));
    });
    assert.ok((again.body as Buffer).equals(layer.bytes));
    assert.equal(upstream.count('GET', `/v2/library/app/blobs/${layer.digest}`), 2);
    // A client has its last byte once the digest checks out; the index row follows the fsync.
    await waitUntil(async () => (await metricValue(cache.url, 'pullthrough_fills_in_flight')) === 0, 'the fill to commit');
  });

  it('removes an image and what only it used', async () => {
    const removed = await admin('delete', '/images?image=docker.io/library/app:1.0').expect(200);
    assert.equal(removed.body.objects, 1 + blobsOf(image).length);
    await admin('delete', '/images?image=docker.io/library/app:1.0').expect(404);
    assert.equal((await admin('get', '/stats').expect(200)).body.objects, 0);
  });

  it('reads the token from a file too', async () => {
    const file = path.join(cache.storageRoot, 'admin-token');
    await writeFile(file, `${TOKEN}\n`);
    const config = parseConfig({ listen: '127.0.0.1:0', logLevel: 'silent', storage: { root: path.join(cache.storageRoot, 'other') }, admin: { tokenFile: file }, upstreams: [{ host: 'docker.io', url: upstream.url, default: true }] }, {}, 't');
    const app = await createApp(config, { logger: createSilentLogger(), withDefaultMetrics: false });
    const { port } = await app.listen();
    try {
      await request(`http://127.0.0.1:${port}`).get('/_pullthrough/admin/stats').set('authorization', `Bearer ${TOKEN}`).expect(200);
    } finally {
      await app.close();
    }
  });
});
