import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { importBundle } from '../../src/bundle/import-bundle.js';
import { TarWriter } from '../../src/bundle/tar.js';
import { SUBJECT_ANNOTATION } from '../../src/oci/referrers.js';
import { createBlobStore, type BlobStore } from '../../src/storage/blob-store.js';
import { createContentStore } from '../../src/storage/content-store.js';
import { createMetadataIndex, type MetadataIndex } from '../../src/storage/metadata-index.js';
import { makeArtifact, makeImage, type Blob, type ImageManifest } from '../helpers/images.js';

const NAME = 'org.opencontainers.image.ref.name';

/** An OCI layout tar in memory: `entries` as index.json's manifests, `files` under blobs/sha256/. */
async function bundleOf(entries: object[], files: readonly Blob[]): Promise<Buffer[]> {
  const out = new PassThrough();
  const chunks: Buffer[] = [];
  out.on('data', (chunk: Buffer) => chunks.push(chunk));
  const tar = new TarWriter(out);
  await tar.addBuffer('oci-layout', Buffer.from('{"imageLayoutVersion":"1.0.0"}'));
  await tar.addBuffer('index.json', Buffer.from(JSON.stringify({ schemaVersion: 2, manifests: entries })));
  const seen = new Set<string>();
  for (const file of files) {
    if (seen.has(file.digest)) continue;
    seen.add(file.digest);
    await tar.addBuffer(`blobs/sha256/${file.digest.slice(7)}`, file.bytes);
  }
  await tar.finish();
  out.end();
  return chunks;
}

function filesOf(...manifests: ImageManifest[]): Blob[] {
  return manifests.flatMap((m) => [m, m.config, ...m.layers]);
}

describe('import of referrers from a bundle', () => {
  let root: string;
  let store: BlobStore;
  let index: MetadataIndex;
  const image = makeImage({ layerSizes: [100] });
  const sig = makeArtifact({ subject: image, artifactType: 'x/sig', annotations: { who: 'ci' } });
  const imageEntry = { mediaType: image.mediaType, digest: image.digest, size: image.bytes.length, annotations: { [NAME]: 'docker.io/library/app:1.0' } };
  const sigEntry = (subject = `docker.io/library/app@${image.digest}`) => ({
    mediaType: sig.mediaType,
    digest: sig.digest,
    size: sig.bytes.length,
    artifactType: 'x/sig',
    annotations: { who: 'ci', [SUBJECT_ANNOTATION]: subject },
  });
  const run = (chunks: Buffer[]) => importBundle(Readable.from(chunks), { content: createContentStore({ files: store, index }), index, upstreamHosts: new Set(['docker.io']), now: Date.now, maxManifestBytes: 4 * 2 ** 20 }, { pin: true });

  before(async () => {
    root = await mkdtemp(path.join(tmpdir(), 'pullthrough-import-referrers-'));
    store = createBlobStore({ root });
    await store.init();
    index = createMetadataIndex({ path: ':memory:' }, { now: Date.now });
  });
  after(async () => {
    index.close();
    await rm(root, { recursive: true, force: true });
  });

  it('rejects a referrer whose blob is missing, or whose subject names an unconfigured registry, importing nothing', async () => {
    const missingBlob = await bundleOf([imageEntry, sigEntry()], [...filesOf(image), sig, sig.config]);
    await assert.rejects(run(missingBlob), /blob sha256:[0-9a-f]{64} is missing from the bundle/);
    const elsewhere = await bundleOf([imageEntry, sigEntry(`evil.example/library/app@${image.digest}`)], filesOf(image, sig));
    await assert.rejects(run(elsewhere), /evil\.example, for which no upstream is configured/);
    const noDigest = await bundleOf([imageEntry, sigEntry('docker.io/library/app:1.0')], filesOf(image, sig));
    await assert.rejects(run(noDigest), /not registry\/repository@digest/);
    assert.equal(index.getContent(image.digest), undefined, 'nothing was committed');
    assert.equal(index.getContent(sig.digest), undefined);
  });

  it('indexes the referrer, its answer under the reserved row (pinned), without our annotation', async () => {
    const result = await run(await bundleOf([imageEntry, sigEntry()], filesOf(image, sig)));
    assert.deepEqual(result.images, ['docker.io/library/app:1.0']);
    const link = { upstream: 'docker.io', repository: 'library/app' };
    const row = index.getTag(link, `referrers:${image.digest}`);
    assert.ok(row, 'the answer is indexed');
    assert.ok(index.isPinned(link, `referrers:${image.digest}`));
    const answer = JSON.parse((await store.readAll({ algorithm: 'sha256', hex: row.digest.slice(7), value: row.digest })).toString()) as { manifests: unknown[] };
    assert.deepEqual(answer.manifests, [{ mediaType: sig.mediaType, digest: sig.digest, size: sig.bytes.length, artifactType: 'x/sig', annotations: { who: 'ci' } }]);
    assert.ok(index.getContent(sig.layers[0]!.digest), 'the referrer blob is in');
    assert.deepEqual(index.listTags(link).filter((t) => !t.includes(':')), ['1.0']);
  });
});
