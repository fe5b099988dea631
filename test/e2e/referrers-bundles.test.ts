import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import request from 'supertest';
import { createMetadataIndex } from '../../src/storage/metadata-index.js';
import { startFakeUpstream, type FakeUpstream } from '../fakes/fake-upstream.js';
import { runCli } from '../helpers/cli.js';
import { readDirImage } from '../helpers/clients.js';
import { startDistribution, type Distribution } from '../helpers/distribution.js';
import { fallbackTagOf, makeArtifact, makeFallbackIndex, makeImage, OCI, type ImageManifest } from '../helpers/images.js';
import { runCommand } from '../helpers/processes.js';
import { startPullthrough } from '../helpers/pullthrough.js';

const SIG = 'application/vnd.dev.cosign.artifact.sig.v1+json';
const SBOM = 'application/spdx+json';

function listed(res: request.Response): string[] {
  return (JSON.parse(res.text) as { manifests: Array<{ digest: string }> }).manifests.map((m) => m.digest).sort();
}

/**
 * Offline sites get the signatures too: `export --referrers` walks every referrer (recursively)
 * of an image on an upstream without the referrers API (distribution 2.8: fallback tags) and on
 * one with it (the fake), `import` brings them into an offline instance, which answers the
 * referrers API, the fallback tags and the artifacts as online did; skopeo still reads the bundle.
 */
describe('export --referrers → import: referrers offline', { timeout: 600_000 }, () => {
  let registry: Distribution;
  let fake: FakeUpstream;
  let work: string;
  const app = makeImage({ layerSizes: [50_000] });
  const sig = makeArtifact({ subject: app, artifactType: SIG, annotations: { 'org.example.who': 'ci' } });
  const sbom = makeArtifact({ subject: app, artifactType: SBOM });
  const sbomSig = makeArtifact({ subject: sbom, artifactType: SIG });
  const tool = makeImage({ layerSizes: [20_000] });
  const toolSig = makeArtifact({ subject: tool, artifactType: SIG });
  const toolSigSig = makeArtifact({ subject: toolSig, artifactType: SIG });

  async function writeConfig(name: string, hubUrl: string, ghcrUrl: string, extra = ''): Promise<{ file: string; root: string }> {
    const root = path.join(work, name);
    const file = path.join(work, `${name}.yaml`);
    await writeFile(file, `listen: 127.0.0.1:9\nlogLevel: warn\nstorage: { root: ${root} }\n${extra}upstreams:\n  - { host: docker.io, url: "${hubUrl}", default: true }\n  - { host: ghcr.io, url: "${ghcrUrl}" }\n`);
    return { file, root };
  }

  before(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'pullthrough-referrers-'));
    registry = await startDistribution();
    await registry.push('library/app', '1.0', app);
    await registry.push('library/app', fallbackTagOf(app.digest), makeFallbackIndex([sig, sbom]));
    await registry.push('library/app', fallbackTagOf(sbom.digest), makeFallbackIndex([sbomSig]));
    fake = await startFakeUpstream({ referrers: { pageSize: 1, filters: true } });
    fake.addImage('acme/tool', '2.0', tool);
    for (const artifact of [toolSig, toolSigSig]) {
      fake.addManifest('acme/tool', artifact);
      for (const b of [artifact.config, ...artifact.layers]) fake.addBlob(b);
    }
  });
  after(async () => {
    await fake?.close();
    await registry?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('carries every referrer, recursively, from both kinds of upstream into an offline instance', async () => {
    const online = await writeConfig('online', registry.url, fake.url);
    const bundle = path.join(work, 'bundle.tar');
    const exported = await runCli(['export', '--config', online.file, '--referrers', '-o', bundle, 'library/app:1.0', 'ghcr.io/acme/tool:2.0']);
    assert.equal(exported.code, 0, exported.stdout + exported.stderr);
    assert.match(exported.stderr + exported.stdout, /3 referrers/);
    assert.match(exported.stderr + exported.stdout, /2 referrers/);

    // Still an OCI image layout skopeo reads by name: the referrer entries carry no ref name.
    const viaSkopeo = path.join(work, 'skopeo-from-bundle');
    const policy = path.join(work, 'policy.json');
    await writeFile(policy, JSON.stringify({ default: [{ type: 'insecureAcceptAnything' }] }));
    await runCommand('skopeo', ['--policy', policy, 'copy', `oci-archive:${bundle}:docker.io/library/app:1.0`, `dir:${viaSkopeo}`]);
    assert.ok((await readDirImage(viaSkopeo)).get('manifest.json')?.equals(app.bytes));

    const offline = await writeConfig('offline-site', 'http://127.0.0.1:9', 'http://127.0.0.1:9', 'offline: true\n');
    const imported = await runCli(['import', '--config', offline.file, bundle]);
    assert.equal(imported.code, 0, imported.stdout + imported.stderr);

    const site = await startPullthrough({
      upstreams: [
        { host: 'docker.io', url: 'http://127.0.0.1:9', default: true },
        { host: 'ghcr.io', url: 'http://127.0.0.1:9' },
      ],
      storageRoot: offline.root,
      offline: true,
    });
    try {
      const appReferrers = await request(site.url).get(`/v2/library/app/referrers/${app.digest}`).expect(200);
      assert.deepEqual(listed(appReferrers), [sig.digest, sbom.digest].sort());
      assert.equal(appReferrers.headers['warning'], undefined, 'a real answer, not "nothing cached"');
      const annotated = (JSON.parse(appReferrers.text) as { manifests: Array<{ digest: string; annotations?: Record<string, string> }> }).manifests.find((m) => m.digest === sig.digest);
      assert.equal(annotated?.annotations?.['org.example.who'], 'ci');
      const sigsOnly = await request(site.url).get(`/v2/docker.io/library/app/referrers/${app.digest}?artifactType=${encodeURIComponent(SIG)}`).expect(200);
      assert.equal(sigsOnly.headers['oci-filters-applied'], 'artifactType');
      assert.deepEqual(listed(sigsOnly), [sig.digest]);
      const nested = await request(site.url).get(`/v2/library/app/referrers/${sbom.digest}`).expect(200);
      assert.deepEqual(listed(nested), [sbomSig.digest]);
      const fallback = await request(site.url).get(`/v2/library/app/manifests/${fallbackTagOf(app.digest)}`).set('accept', OCI.index).expect(200);
      assert.deepEqual(listed(fallback), [sig.digest, sbom.digest].sort());
      const artifact = await request(site.url).get(`/v2/library/app/manifests/${sbomSig.digest}`).set('accept', OCI.manifest).expect(200);
      assert.ok(Buffer.from(artifact.text).equals(sbomSig.bytes));
      await request(site.url).get(`/v2/library/app/blobs/${sig.layers[0]!.digest}`).expect(200);

      const toolReferrers = await request(site.url).get(`/v2/acme/tool/referrers/${tool.digest}?ns=ghcr.io`).expect(200);
      assert.deepEqual(listed(toolReferrers), [toolSig.digest]);
      const toolNested = await request(site.url).get(`/v2/ghcr.io/acme/tool/referrers/${toolSig.digest}`).expect(200);
      assert.deepEqual(listed(toolNested), [toolSigSig.digest]);
      await request(site.url).get(`/v2/ghcr.io/acme/tool/blobs/${toolSigSig.layers[0]!.digest}`).expect(200);
    } finally {
      await site.close({ keepStorage: true });
    }
  });

  it('preload --referrers fills the cache with them and pins them', async () => {
    const config = await writeConfig('preloaded', registry.url, fake.url);
    const preloaded = await runCli(['preload', '--config', config.file, '--referrers', 'ghcr.io/acme/tool:2.0']);
    assert.equal(preloaded.code, 0, preloaded.stdout + preloaded.stderr);
    const index = createMetadataIndex({ path: path.join(config.root, 'index.db') }, { now: Date.now });
    try {
      const link = { upstream: 'ghcr.io', repository: 'acme/tool' };
      assert.ok(index.isPinned(link, toolSig.digest), 'the referrer is pinned');
      assert.ok(index.isPinned(link, `referrers:${tool.digest}`), 'the referrers answer is pinned');
      assert.ok(index.getContent(toolSigSig.layers[0]!.digest), 'a referrer of a referrer has its blobs in the cache');
    } finally {
      index.close();
    }
  });
});
