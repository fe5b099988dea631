import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseDigest } from '../../../src/oci/digest.js';
import { fallbackTag, indexManifests, isReservedTagName, referrerDescriptors, referrersIndex, referrersTagName } from '../../../src/oci/referrers.js';

describe('referrers (oci)', () => {
  it('names the fallback tag <alg>-<hex>, the hex cut at 64 characters', () => {
    const sha256 = parseDigest(`sha256:${'a'.repeat(64)}`);
    assert.equal(fallbackTag(sha256), `sha256-${'a'.repeat(64)}`);
    assert.equal(fallbackTag(parseDigest(`sha512:${'b'.repeat(128)}`)), `sha512-${'b'.repeat(64)}`);
  });

  it('keeps the reserved answer name apart from every real tag', () => {
    const name = referrersTagName(parseDigest(`sha256:${'c'.repeat(64)}`));
    assert.ok(isReservedTagName(name));
    assert.ok(!isReservedTagName('sha256-abc.sig'));
    assert.ok(!isReservedTagName('latest'));
  });

  it('passes on only well-formed descriptors, with only the fields an answer carries', () => {
    const good = { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: `sha256:${'d'.repeat(64)}`, size: 10, artifactType: 'a/b', annotations: { k: 'v' }, urls: ['http://evil'] };
    const list = referrerDescriptors([good, null, 'x', { ...good, size: -1 }, { ...good, size: '10' }, { ...good, digest: 5 }, { ...good, annotations: { k: 1 } }]);
    assert.deepEqual(list[0], { mediaType: good.mediaType, digest: good.digest, size: 10, artifactType: 'a/b', annotations: { k: 'v' } });
    assert.equal(list.length, 2, 'the one with bad annotations keeps its descriptor, without them');
    assert.equal(list[1]?.annotations, undefined);
  });

  it('writes an image index and reads one back, and nothing else', () => {
    const bytes = referrersIndex([]);
    assert.deepEqual(JSON.parse(bytes.toString()), { schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [] });
    assert.deepEqual(indexManifests(bytes), []);
    assert.equal(indexManifests(Buffer.from('{"layers":[]}')), undefined);
    assert.equal(indexManifests(Buffer.from('not json')), undefined);
  });
});
