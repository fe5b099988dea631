import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { startFakeUpstream, type FakeUpstream } from '../fakes/fake-upstream.js';
import { makeImage, type ImageManifest } from '../helpers/images.js';
import { startPullthrough, type RunningPullthrough } from '../helpers/pullthrough.js';

/** One raw HTTP/1.1 GET (no client-side URL normalisation); resolves to the status and body. */
function rawGet(port: number, target: string, headers: readonly string[] = []): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', reject);
    socket.on('close', () => {
      const text = Buffer.concat(chunks).toString('latin1');
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0);
      resolve({ status, body: text.slice(text.indexOf('\r\n\r\n') + 4) });
    });
    socket.setTimeout(10_000, () => socket.destroy(new Error(`no answer to ${target}`)));
    socket.write(`GET ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n${headers.map((h) => `${h}\r\n`).join('')}\r\n`);
  });
}

/*
 * Hostile request lines and headers, as an attacker would send them: none may reach the
 * "unexpected error" path (500 UNKNOWN). Those a client can only have got wrong answer 400 with an
 * OCI error body; the rest answer whatever fits (404, 200 ignoring a bad Range), never 500.
 */
describe('hostile input: 4xx with an OCI error, never 500', () => {
  let hub: FakeUpstream;
  let cache: RunningPullthrough;
  let port: number;
  let image: ImageManifest;

  before(async () => {
    hub = await startFakeUpstream();
    image = makeImage({ layerSizes: [64] });
    hub.addImage('library/app', '1', image);
    // A catch-all, so host-looking names are tried as registries (the widest attack surface).
    cache = await startPullthrough({ upstreams: [{ host: 'docker.io', url: hub.url, default: true }, { host: '*', url: 'http://{host}' }] });
    port = Number(cache.host.split(':')[1]);
  });
  after(async () => {
    await cache.close();
    await hub.close();
  });

  const badRequests: ReadonlyArray<readonly [string, string]> = [
    ['/v2/127.0.0.1:99999/x/manifests/1', 'NAME_INVALID'],
    ['/v2/localhost:65536/x/manifests/1', 'NAME_INVALID'],
    [`/v2/registry.example:123456/x/blobs/sha256:${'a'.repeat(64)}`, 'NAME_INVALID'],
    ['/v2/127.0.0.1:99999/x/tags/list', 'NAME_INVALID'],
    ['/v2/library/app/manifests/1?ns=127.0.0.1:99999', 'NAME_INVALID'],
    ['/v2/library/app/manifests/1?ns=a/b', 'NAME_INVALID'],
    ['/v2/library/app/manifests/1?ns=%ff', 'NAME_INVALID'],
    ['/v2/foo%ZZ/manifests/x', 'NAME_INVALID'],
    ['/v2/library/app/manifests/%ff%fe', 'NAME_INVALID'],
    ['/v2/library/app/blobs/%ZZ', 'NAME_INVALID'],
    ['/v2/library/app/blobs/sha256:%ff', 'NAME_INVALID'],
    ['/v2/library/%E0%A4%A/tags/list', 'NAME_INVALID'],
    ['/v2/a%00b/manifests/1', 'NAME_INVALID'],
    [`/v2/${'a'.repeat(5000)}/manifests/1`, 'NAME_INVALID'],
    [`/v2/library/app/manifests/sha256:${'z'.repeat(64)}`, 'DIGEST_INVALID'],
    ['/v2/library/app/blobs/md5:abc', 'DIGEST_INVALID'],
    ['/v2/library/app/tags/list?n=abc', 'PAGINATION_NUMBER_INVALID'],
    ['/v2/library/app/tags/list?n=-1', 'PAGINATION_NUMBER_INVALID'],
    ['/v2/library/app/tags/list?n=99999999999999999999', 'PAGINATION_NUMBER_INVALID'],
    ['/v2/_catalog?n=abc', 'PAGINATION_NUMBER_INVALID'],
  ];
  for (const [target, code] of badRequests) {
    it(`GET ${target.slice(0, 80)} → 400 ${code}`, async () => {
      const res = await rawGet(port, target);
      assert.equal(res.status, 400, res.body);
      assert.equal((JSON.parse(res.body) as { errors: Array<{ code: string }> }).errors[0]?.code, code);
    });
  }

  it('answers headers past the 16 KiB limit with 431, and a request line of garbage with 400', async () => {
    assert.equal((await rawGet(port, '/v2/library/app/manifests/1', [`Accept: ${'a'.repeat(20_000)}`])).status, 431);
    assert.equal((await rawGet(port, '/v2/ HTTP/9.9 garbage')).status, 400);
  });

  it('answers odd paths, queries and headers without a 500', async () => {
    const layer = `/v2/library/app/blobs/${image.layers[0]!.digest}`;
    const manifest = '/v2/library/app/manifests/1';
    const cases: Array<readonly [string, readonly string[]]> = [
      ['/v2/%2e%2e/%2e%2e/manifests/1', []],
      ['/v2/../../etc/manifests/1', []],
      // Not a tag: 404 MANIFEST_UNKNOWN (the spec's answer, see routes/manifests.ts).
      ['/v2/library/app/manifests/..', []],
      ['/v2/[::1]:5000/x/manifests/1', []],
      ['/v2/library/app/manifests/1?ns=%ZZ', []],
      ['/v2/library/app/manifests/1?ns=', []],
      ['/v2/library/app/manifests/1?ns=a&ns=b', []],
      ['/v2/library/app/tags/list?last=%ZZ', []],
      ['/v2/library/app/tags/list?n=1&n=2', []],
      ['/_pullthrough/status?x=%ZZ', []],
      ['/%ZZ', []],
      ['/_pullthrough/token?scope=%ZZ&service=%ff', []],
      [manifest, ['Accept: ' + 'a,'.repeat(2000)]],
      [manifest, ['Accept: ;;;;;']],
      [manifest, ['Accept: application/vnd.oci.image.manifest.v1+json;q=abc']],
      [manifest, ['Authorization: Basic %%%%']],
      [manifest, [`Authorization: Basic ${Buffer.from('no-colon').toString('base64')}`]],
      [manifest, ['Authorization: Bearer']],
      [manifest, ['If-None-Match: ' + '"x",'.repeat(1000)]],
      [layer, ['Range: bytes=99999999999999999999-']],
      [layer, ['Range: bytes=-99999999999999999999']],
      [layer, ['Range: bytes=0-99999999999999999999']],
      [layer, ['Range: bytes=5-1']],
      [layer, ['Range: bytes=1e3-']],
      [layer, ['Range: bytes=0-1,2-3']],
      [layer, ['Range: items=0-1']],
      [layer, ['Range: bytes=64-']],
    ];
    const answers: string[] = [];
    for (const [target, headers] of cases) {
      const res = await rawGet(port, target, headers);
      answers.push(`${res.status} ${target.slice(0, 60)} ${headers.join(' ').slice(0, 60)}`);
    }
    assert.deepEqual(answers.filter((a) => !/^[234]\d\d /.test(a)), []);
  });
});
