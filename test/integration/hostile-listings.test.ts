import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import request from 'supertest';
import { startPullthrough, type RunningPullthrough } from '../helpers/pullthrough.js';

const SUBJECT = `sha256:${'a'.repeat(64)}`;

async function listen(server: Server): Promise<string> {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/**
 * An upstream whose listings never end, or point elsewhere: pullthrough follows its pages
 * within bounds (64 referrers pages, 100 tag pages), on its own origin only, and still answers.
 */
describe('hostile upstream listings', () => {
  let elsewhere: Server;
  let elsewhereHits = 0;
  let upstream: Server;
  let cache: RunningPullthrough;
  const hits = { tags: 0, referrers: 0, big: 0 };

  before(async () => {
    elsewhere = createServer((_req, res) => {
      elsewhereHits += 1;
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"tags":["stolen"],"manifests":[]}');
    });
    const elsewhereUrl = await listen(elsewhere);
    upstream = createServer((req, res) => {
      const url = new URL(req.url ?? '/', 'http://x');
      const page = Number(url.searchParams.get('page') ?? '0');
      if (url.pathname === '/v2/loop/app/tags/list') {
        hits.tags += 1;
        res.writeHead(200, { 'content-type': 'application/json', link: `</v2/loop/app/tags/list?page=${page + 1}>; rel="next"` });
        return void res.end(JSON.stringify({ tags: [`t${String(page).padStart(4, '0')}`] }));
      }
      if (url.pathname === '/v2/away/app/tags/list') {
        res.writeHead(200, { 'content-type': 'application/json', link: `<${elsewhereUrl}/v2/away/app/tags/list?last=a>; rel="next"` });
        return void res.end(JSON.stringify({ tags: ['a'] }));
      }
      if (url.pathname === `/v2/loop/app/referrers/${SUBJECT}`) {
        hits.referrers += 1;
        const descriptor = { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: `sha256:${page.toString(16).padStart(64, '0')}`, size: 2, artifactType: 'x/y' };
        res.writeHead(200, { 'content-type': 'application/vnd.oci.image.index.v1+json', link: `</v2/loop/app/referrers/${SUBJECT}?page=${page + 1}>; rel="next"` });
        return void res.end(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [descriptor] }));
      }
      if (url.pathname === `/v2/big/app/referrers/${SUBJECT}`) {
        hits.big += 1;
        const descriptor = { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: `sha256:${page.toString(16).padStart(64, '0')}`, size: 2, annotations: { pad: 'x'.repeat(2 ** 20) } };
        res.writeHead(200, { 'content-type': 'application/vnd.oci.image.index.v1+json', link: `</v2/big/app/referrers/${SUBJECT}?page=${page + 1}>; rel="next"` });
        return void res.end(JSON.stringify({ schemaVersion: 2, manifests: [descriptor] }));
      }
      if (url.pathname === `/v2/away/app/referrers/${SUBJECT}`) {
        res.writeHead(200, { 'content-type': 'application/vnd.oci.image.index.v1+json', link: `<${elsewhereUrl}/v2/away/app/referrers/${SUBJECT}>; rel="next"` });
        return void res.end(JSON.stringify({ schemaVersion: 2, manifests: [] }));
      }
      if (url.pathname === '/v2/huge/app/tags/list') {
        res.writeHead(200, { 'content-type': 'application/json' });
        return void res.end(`{"tags":[${'"t",'.repeat(2 ** 20)}"t"]}`);
      }
      if (url.pathname === `/v2/huge/app/referrers/${SUBJECT}`) {
        res.writeHead(200, { 'content-type': 'application/vnd.oci.image.index.v1+json' });
        return void res.end(`{"manifests":[${'{},'.repeat(2 * 2 ** 20)}{}]}`);
      }
      res.writeHead(404, { 'content-type': 'application/json' }).end('{"errors":[{"code":"NAME_UNKNOWN"}]}');
    });
    const upstreamUrl = await listen(upstream);
    cache = await startPullthrough({ upstreams: [{ host: 'docker.io', url: upstreamUrl, default: true }] });
  });
  after(async () => {
    await cache.close();
    upstream.closeAllConnections();
    elsewhere.closeAllConnections();
    await new Promise((resolve) => upstream.close(resolve));
    await new Promise((resolve) => elsewhere.close(resolve));
  });

  it('stops following endless tag pages at the bound and still answers', async () => {
    const res = await request(cache.url).get('/v2/loop/app/tags/list?n=3').expect(200);
    assert.deepEqual(res.body.tags, ['t0000', 't0001', 't0002']);
    assert.equal(hits.tags, 100);
  });

  it('stops following endless referrers pages at 64 pages', async () => {
    const res = await request(cache.url).get(`/v2/loop/app/referrers/${SUBJECT}`).expect(200);
    assert.equal((JSON.parse(res.text) as { manifests: unknown[] }).manifests.length, 64);
    assert.equal(hits.referrers, 64);
  });

  it('stops asking for referrers pages once 4 MiB were read', async () => {
    const res = await request(cache.url).get(`/v2/big/app/referrers/${SUBJECT}`).expect(200);
    assert.equal((JSON.parse(res.text) as { manifests: unknown[] }).manifests.length, 4);
    assert.equal(hits.big, 4);
  });

  it('never follows a Link to another origin', async () => {
    const tags = await request(cache.url).get('/v2/away/app/tags/list').expect(200);
    assert.deepEqual(tags.body.tags, ['a']);
    await request(cache.url).get(`/v2/away/app/referrers/${SUBJECT}`).expect(200);
    assert.equal(elsewhereHits, 0);
  });

  it('refuses a tags page over the size bound instead of buffering it', async () => {
    const res = await request(cache.url).get('/v2/huge/app/tags/list').expect(503);
    assert.match(res.body.errors[0].message, /over the \d+-byte limit/);
  });

  it('refuses a referrers page over the size bound instead of buffering it', async () => {
    const res = await request(cache.url).get(`/v2/huge/app/referrers/${SUBJECT}`).expect(503);
    assert.match(res.body.errors[0].message, /over the \d+-byte limit/);
  });
});
