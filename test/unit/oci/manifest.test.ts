import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { digestOf, parseDigest } from '../../../src/oci/digest.js';
import { checkManifestDigest, declaredMediaType, manifestReferences } from '../../../src/oci/manifest.js';
import { makeImage, makeIndex } from '../../helpers/images.js';

describe('manifest references', () => {
  it('lists config and layers of an image manifest', () => {
    const image = makeImage({ layerSizes: [1, 2] });
    const refs = manifestReferences(image.bytes, image.mediaType);
    assert.deepEqual(refs.blobs.map((d) => d.digest), [image.config.digest, ...image.layers.map((l) => l.digest)]);
    assert.deepEqual(refs.manifests, []);
  });
  it('lists the manifests of an index', () => {
    const index = makeIndex([makeImage({ layerSizes: [1] }), makeImage({ layerSizes: [1] })], 'docker');
    const refs = manifestReferences(index.bytes, index.mediaType);
    assert.deepEqual(refs.manifests.map((d) => d.digest), index.images.map((m) => m.digest));
    assert.equal(declaredMediaType(index.bytes), index.mediaType);
  });
  it('finds nothing in what is not a manifest, without throwing', () => {
    assert.deepEqual(manifestReferences(Buffer.from('not json'), 'x'), { manifests: [], blobs: [] });
    assert.deepEqual(manifestReferences(Buffer.from('{"layers":[{"digest":1}]}'), 'x'), { manifests: [], blobs: [] });
    assert.equal(declaredMediaType(Buffer.from('[]')), undefined);
  });
});

describe('checkManifestDigest', () => {
  const body = Buffer.from('{"schemaVersion":2}');
  const sha256 = digestOf(body);
  const sha512 = digestOf(body, 'sha512');
  const other = digestOf(Buffer.from('other'));

  it('checks against the expected digest, in its algorithm, before any header', () => {
    assert.deepEqual(checkManifestDigest(body, parseDigest(sha256), other), { digest: sha256, mismatch: undefined });
    assert.deepEqual(checkManifestDigest(body, parseDigest(sha512), undefined), { digest: sha512, mismatch: undefined }, 'an index may name a child by sha512');
    assert.deepEqual(checkManifestDigest(body, parseDigest(other), sha256), { digest: sha256, mismatch: other });
  });

  it('else against Docker-Content-Digest when it is sha256, else nothing', () => {
    assert.deepEqual(checkManifestDigest(body, undefined, sha256), { digest: sha256, mismatch: undefined });
    assert.deepEqual(checkManifestDigest(body, undefined, other), { digest: sha256, mismatch: other });
    assert.deepEqual(checkManifestDigest(body, undefined, sha512), { digest: sha256, mismatch: undefined });
    assert.deepEqual(checkManifestDigest(body, undefined, undefined), { digest: sha256, mismatch: undefined });
  });
});
