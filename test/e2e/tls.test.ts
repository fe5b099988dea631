import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import { startFakeUpstream, type FakeUpstream } from '../fakes/fake-upstream.js';
import { skopeoCopy } from '../helpers/clients.js';
import { blobsOf, makeImage } from '../helpers/images.js';
import { startPullthrough, type RunningPullthrough } from '../helpers/pullthrough.js';
import { makeTestCertificates, type TestCertificates } from '../helpers/test-ca.js';

describe('TLS', { timeout: 300_000 }, () => {
  let upstream: FakeUpstream;
  let cache: RunningPullthrough;
  let certs: TestCertificates;
  const image = makeImage({ layerSizes: [50_000] });

  before(async () => {
    certs = await makeTestCertificates();
    upstream = await startFakeUpstream();
    upstream.addImage('library/app', '1.0', image);
    cache = await startPullthrough({ upstreams: [{ host: 'docker.io', url: upstream.url, default: true }], tls: { cert: certs.serverCert, key: certs.serverKey } });
  });
  after(async () => {
    await cache?.close();
    await upstream?.close();
    if (certs) await rm(certs.dir, { recursive: true, force: true });
  });

  it('serves skopeo over HTTPS with a certificate from a CA it was given', async () => {
    const pulled = await skopeoCopy(`${cache.host}/library/app:1.0`, { certDir: certs.caDir });
    assert.ok(pulled.files.get('manifest.json')?.equals(image.bytes));
    for (const blob of blobsOf(image)) assert.ok(pulled.files.get(blob.digest.slice(7))?.equals(blob.bytes));
    await pulled.cleanup();
  });

  it('is refused by a client that does not trust the CA', async () => {
    await assert.rejects(skopeoCopy(`${cache.host}/library/app:1.0`), /certificate|x509/);
  });
});
