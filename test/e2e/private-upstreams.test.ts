import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import { startTokenIssuer, type TokenIssuer } from '../fakes/token-issuer.js';
import { skopeoCopy } from '../helpers/clients.js';
import { startDistribution, type Distribution } from '../helpers/distribution.js';
import { blobsOf, makeImage, type ImageManifest } from '../helpers/images.js';
import { startPullthrough, type RunningPullthrough } from '../helpers/pullthrough.js';
import { makeTestCertificates, type TestCertificates } from '../helpers/test-ca.js';

const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

interface Target {
  readonly label: string;
  readonly image: ImageManifest;
  /** Builds the request path for a reference (`manifests/1.0`, `blobs/sha256:…`). */
  readonly path: (suffix: string) => string;
  readonly right: string;
  readonly wrong: string;
}

describe('credentials and private images: the leak matrix against real registries', { timeout: 600_000 }, () => {
  let certs: TestCertificates;
  let issuer: TokenIssuer;
  let tokenRegistry: Distribution;
  let basicRegistry: Distribution;
  let cache: RunningPullthrough;
  let clock = Date.UTC(2026, 0, 1);
  const publicImage = makeImage({ layerSizes: [20_000] });
  const privateImage = makeImage({ layerSizes: [30_000] });
  const teamImage = makeImage({ layerSizes: [25_000] });
  let targets: Target[];

  before(async () => {
    certs = await makeTestCertificates();
    issuer = await startTokenIssuer({ certPem: certs.caCert, keyPem: certs.caKey, users: { alice: 'alice-secret' } });
    tokenRegistry = await startDistribution({ auth: { kind: 'token', realm: issuer.realm, service: issuer.service, issuer: issuer.issuer, rootCertBundle: certs.caCert } });
    tokenRegistry.setPushAuthorization(`Bearer ${issuer.adminToken(['public/app', 'private/app'])}`);
    await tokenRegistry.push('public/app', '1.0', publicImage);
    await tokenRegistry.push('private/app', '1.0', privateImage);
    basicRegistry = await startDistribution({ auth: { kind: 'htpasswd', users: { bob: 'bob-secret' } } });
    await basicRegistry.push('team/app', '1.0', teamImage);
    cache = await startPullthrough({
      upstreams: [
        // The token service is another loopback origin: one the operator lists, as for a site's own.
        { host: 'docker.io', url: tokenRegistry.url, default: true, allowOrigins: [new URL(issuer.realm).origin] },
        { host: 'basic.example', url: basicRegistry.url },
      ],
      now: () => clock,
    });
    targets = [
      // containerd's style: ?ns= names the registry.
      { label: 'token auth (ns=)', image: privateImage, path: (s) => `/v2/private/app/${s}?ns=docker.io`, right: basic('alice', 'alice-secret'), wrong: basic('alice', 'guess') },
      // registries.conf style: the registry host is the first path component.
      { label: 'htpasswd (prefix)', image: teamImage, path: (s) => `/v2/basic.example/team/app/${s}`, right: basic('bob', 'bob-secret'), wrong: basic('bob', 'guess') },
    ];
  });
  after(async () => {
    await cache?.close();
    await tokenRegistry?.stop();
    await basicRegistry?.stop();
    await issuer?.close();
    if (certs) await rm(certs.dir, { recursive: true, force: true });
  });

  const kinds = (image: ImageManifest) => [
    { kind: 'manifest by tag', suffix: 'manifests/1.0', bytes: image.bytes },
    { kind: 'manifest by digest', suffix: `manifests/${image.digest}`, bytes: image.bytes },
    { kind: 'blob', suffix: `blobs/${image.layers[0]!.digest}`, bytes: image.layers[0]!.bytes },
  ];

  async function get(path: string, authorization?: string): Promise<{ status: number; body: Buffer; challenge: string | null }> {
    const response = await fetch(`${cache.url}${path}`, { headers: { accept: 'application/vnd.oci.image.manifest.v1+json', ...(authorization && { authorization }) } });
    return { status: response.status, body: Buffer.from(await response.arrayBuffer()), challenge: response.headers.get('www-authenticate') };
  }

  async function expectDenied(state: string): Promise<void> {
    for (const target of targets) {
      for (const { kind, suffix } of kinds(target.image)) {
        for (const [who, authorization] of [['anonymous', undefined], ['wrong credentials', target.wrong]] as const) {
          const res = await get(target.path(suffix), authorization);
          assert.equal(res.status, 401, `${state}: ${target.label}, ${kind}, ${who}`);
          assert.match(res.challenge ?? '', /^Bearer realm="http:\/\/127\.0\.0\.1:\d+\/_pullthrough\/token"/);
        }
      }
    }
  }

  async function expectServed(state: string): Promise<void> {
    for (const target of targets) {
      for (const { kind, suffix, bytes } of kinds(target.image)) {
        const res = await get(target.path(suffix), target.right);
        assert.equal(res.status, 200, `${state}: ${target.label}, ${kind}, right credentials`);
        assert.ok(res.body.equals(bytes), `${state}: ${target.label}, ${kind}: exact bytes`);
      }
    }
  }

  it('cold: only the right credentials get private content', async () => {
    await expectDenied('cold');
    await expectServed('cold');
  });

  it('warm: cached private content still goes to the right credentials only', async () => {
    await expectDenied('warm');
    await expectServed('warm');
    clock += 10 * 60_000;
    await expectDenied('warm, decisions expired');
    await expectServed('warm, decisions expired');
  });

  it('serves public content to anyone, and never a private blob through a public repository', async () => {
    const tag = await get('/v2/public/app/manifests/1.0');
    assert.equal(tag.status, 200);
    assert.ok(tag.body.equals(publicImage.bytes));
    const blob = await get(`/v2/public/app/blobs/${publicImage.layers[0]!.digest}`);
    assert.ok(blob.body.equals(publicImage.layers[0]!.bytes));
    const smuggled = await get(`/v2/public/app/blobs/${privateImage.layers[0]!.digest}`);
    assert.notEqual(smuggled.status, 200, 'a cached private blob asked for through a public repository');
    const smuggledWithOtherCreds = await get(`/v2/public/app/blobs/${teamImage.layers[0]!.digest}`, basic('alice', 'alice-secret'));
    assert.notEqual(smuggledWithOtherCreds.status, 200, 'another registry user cannot reach it either');
    // alice was just let into private/app: that says nothing about a digest cached for basic.example.
    const crossed = await get(`/v2/private/app/blobs/${teamImage.layers[0]!.digest}?ns=docker.io`, basic('alice', 'alice-secret'));
    assert.notEqual(crossed.status, 200, 'access to one repository does not open content cached for another');
  });

  it('skopeo pulls private images through both upstreams with --src-creds', async () => {
    const fromToken = await skopeoCopy(`${cache.host}/private/app:1.0`, { tlsVerify: false, creds: 'alice:alice-secret' });
    assert.ok(fromToken.files.get('manifest.json')?.equals(privateImage.bytes));
    for (const blob of blobsOf(privateImage)) assert.ok(fromToken.files.get(blob.digest.slice(7))?.equals(blob.bytes));
    await fromToken.cleanup();
    const fromBasic = await skopeoCopy(`${cache.host}/basic.example/team/app:1.0`, { tlsVerify: false, creds: 'bob:bob-secret' });
    assert.ok(fromBasic.files.get('manifest.json')?.equals(teamImage.bytes));
    await fromBasic.cleanup();
    await assert.rejects(skopeoCopy(`${cache.host}/basic.example/team/app:1.0`, { tlsVerify: false, creds: 'bob:guess' }), /401|unauthorized|authentication/i);
  });

  it('upstreams stopped: credentials the upstream accepted before still work, nothing else does', async () => {
    await tokenRegistry.stop();
    await basicRegistry.stop();
    await issuer.close();
    clock += 10 * 60_000;
    await expectDenied('upstream stopped');
    await expectServed('upstream stopped');
    const catalog = await get('/v2/_catalog', basic('nobody', 'x'));
    assert.deepEqual(JSON.parse(catalog.body.toString()).repositories, ['public/app'], 'private repository names are not listed');
  });
});
