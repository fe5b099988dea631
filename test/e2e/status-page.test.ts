import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import request from 'supertest';
import { startFakeUpstream, type FakeUpstream } from '../fakes/fake-upstream.js';
import { renderPage } from '../helpers/chromium.js';
import { blobsOf, makeImage } from '../helpers/images.js';
import { startPullthrough, type RunningPullthrough } from '../helpers/pullthrough.js';

describe('status page in headless Chromium', { timeout: 180_000 }, () => {
  let upstream: FakeUpstream;
  let cache: RunningPullthrough;
  let work: string;

  before(async () => {
    upstream = await startFakeUpstream();
    const image = makeImage({ layerSizes: [300_000] });
    upstream.addImage('library/nginx', '1.27', image);
    cache = await startPullthrough({ upstreams: [{ host: 'docker.io', url: upstream.url, default: true }, { host: 'ghcr.io', url: 'http://127.0.0.1:9' }] });
    for (let i = 0; i < 2; i++) {
      await request(cache.url).get('/v2/library/nginx/manifests/1.27').expect(200);
      for (const blob of blobsOf(image)) await request(cache.url).get(`/v2/library/nginx/blobs/${blob.digest}`).expect(200);
    }
    await request(cache.url).get('/v2/ghcr.io/acme/tool/manifests/1.0').expect(503);
    work = await mkdtemp(path.join(tmpdir(), 'pullthrough-status-'));
  });
  after(async () => {
    await cache?.close();
    await upstream?.close();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('renders hit ratio, upstream health and the cached images, and screenshots as a real page', async () => {
    const screenshot = path.join(work, 'status.png');
    const dom = await renderPage(`${cache.url}/`, screenshot);
    assert.match(dom, /<div class="card" id="hit-ratio"><b>\d+\.\d %<\/b>/);
    assert.match(dom, /docker\.io\/library\/nginx:1\.27/);
    assert.match(dom, /<td class="ok">ok<\/td>/, 'docker.io is healthy');
    assert.match(dom, /<td class="bad">failing: /, 'ghcr.io is failing');
    const png = await readFile(screenshot);
    assert.ok(png.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])), 'a PNG');
    assert.ok(png.length > 10_000, `a screenshot with content (${png.length} bytes)`);
    if (process.env['PULLTHROUGH_KEEP_SCREENSHOT']) await import('node:fs/promises').then((fs) => fs.copyFile(screenshot, process.env['PULLTHROUGH_KEEP_SCREENSHOT']!));
  });
});
