import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
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

  it('lets preload pull through the live HTTPS server that owns the storage, not an in-process one beside it', async () => {
    const config = path.join(certs.dir, 'preload.yaml');
    // A listen address nothing answers at: the storage lock names where the server really is.
    await writeFile(config, `listen: 127.0.0.1:9\nlogLevel: warn\ntls: { cert: ${certs.serverCert}, key: ${certs.serverKey} }\nstorage: { root: ${cache.storageRoot} }\nupstreams:\n  - { host: docker.io, url: "${upstream.url}", default: true }\n`);
    const { stdout, stderr } = await promisify(execFile)(process.execPath, ['--import', 'tsx', 'src/main.ts', 'preload', '--config', config, '--no-pin', 'library/app:1.0'], {
      // The CA a private mirror's clients are given; the probe verifies the certificate like any client.
      env: { ...process.env, NODE_EXTRA_CA_CERTS: certs.caCert },
      timeout: 120_000,
    });
    assert.match(stderr, new RegExp(`pulling through ${cache.url.replace(/[.]/g, '\\.')}`));
    assert.match(stdout, /preloaded 1 of 1 images/);
  });

  it('is refused by a client that does not trust the CA', async () => {
    await assert.rejects(skopeoCopy(`${cache.host}/library/app:1.0`), /certificate|x509/);
  });
});
