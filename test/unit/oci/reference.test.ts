import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseDigest } from '../../../src/oci/digest.js';
import { OciError } from '../../../src/oci/errors.js';
import { accepts, parseAccept } from '../../../src/oci/media-types.js';
import { checkRepositoryRequest, isRegistryHost, isValidRegistryHost, parseManifestReference, parseRepositoryName } from '../../../src/oci/reference.js';

function code(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return err instanceof OciError ? err.code : 'not an OciError';
  }
  return undefined;
}

describe('repository names', () => {
  it('accepts the grammar of distribution-spec', () => {
    for (const name of ['a', 'library/nginx', 'a/b/c/d', 'my-app', 'my__app', 'my.app', 'a---b', 'x0/y_1.z-2']) {
      assert.equal(parseRepositoryName(name), name);
    }
  });
  it('rejects everything else as NAME_INVALID', () => {
    for (const name of ['', 'Upper', 'a//b', '/a', 'a/', '..', 'a/../b', 'a/./b', '-a', 'a-', 'a___b', 'a:b', 'a b', 'é', 'a'.repeat(256)]) {
      assert.equal(code(() => parseRepositoryName(name)), 'NAME_INVALID', JSON.stringify(name));
    }
  });
});

describe('digests', () => {
  it('parses sha256 and sha512', () => {
    const d = parseDigest(`sha256:${'a'.repeat(64)}`);
    assert.deepEqual(d, { algorithm: 'sha256', hex: 'a'.repeat(64), value: `sha256:${'a'.repeat(64)}` });
    assert.equal(parseDigest(`sha512:${'0'.repeat(128)}`).algorithm, 'sha512');
  });
  it('rejects bad algorithms, lengths, case and path tricks as DIGEST_INVALID', () => {
    for (const input of ['sha256', 'sha256:', `sha256:${'a'.repeat(63)}`, `sha256:${'A'.repeat(64)}`, `md5:${'a'.repeat(32)}`, `sha256:${'g'.repeat(64)}`, 'sha256:../../etc/passwd', `sha512:${'a'.repeat(64)}`, `:${'a'.repeat(64)}`]) {
      assert.equal(code(() => parseDigest(input)), 'DIGEST_INVALID', input);
    }
  });
});

describe('manifest references', () => {
  it('tells tags from digests', () => {
    assert.deepEqual(parseManifestReference('1.25-alpine'), { kind: 'tag', tag: '1.25-alpine' });
    assert.equal(parseManifestReference(`sha256:${'b'.repeat(64)}`).kind, 'digest');
  });
  it('rejects tags outside the grammar', () => {
    for (const tag of ['-x', '.x', 'a'.repeat(129), 'a/b', 'a b']) {
      assert.equal(code(() => parseManifestReference(tag)), 'MANIFEST_INVALID', tag);
    }
    assert.equal(parseManifestReference('a'.repeat(128)).kind, 'tag');
  });
});

describe('registry hosts as first path component', () => {
  it('follows the docker reference rule', () => {
    assert.ok(isRegistryHost('ghcr.io'));
    assert.ok(isRegistryHost('localhost'));
    assert.ok(isRegistryHost('localhost:5001'));
    assert.ok(isRegistryHost('10.0.0.1:5000'));
    assert.ok(!isRegistryHost('library'));
    assert.ok(!isRegistryHost('acme'));
  });
});

describe('Accept', () => {
  it('reads one comma-separated line (containerd) and many lines (containers/image) alike', () => {
    assert.deepEqual(parseAccept('a/b, c/d;q=0.5 ,*/*'), ['a/b', 'c/d', '*/*']);
    assert.deepEqual(parseAccept(['a/b', 'C/D']), ['a/b', 'c/d']);
    assert.deepEqual(parseAccept(undefined), []);
  });
  it('matches exact types, wildcards, and no Accept at all', () => {
    assert.ok(accepts([], 'x/y'));
    assert.ok(accepts(['*/*'], 'x/y'));
    assert.ok(accepts(['x/*'], 'x/y'));
    assert.ok(accepts(['x/y'], 'X/Y'));
    assert.ok(!accepts(['x/z'], 'x/y'));
  });
});

describe('registry hosts in requests', () => {
  it('takes ports a URL can hold and nothing past 65535', () => {
    for (const host of ['docker.io', 'localhost:5000', '127.0.0.1:65535', 'a.b.c:1']) assert.equal(isValidRegistryHost(host), true, host);
    for (const host of ['127.0.0.1:99999', 'localhost:65536', 'x.io:123456', 'x.io:', 'a/b', '[::1]:5000']) assert.equal(isValidRegistryHost(host), false, host);
  });
  it('refuses a malformed host in a name prefix or ns= as NAME_INVALID', () => {
    assert.equal(code(() => checkRepositoryRequest({ name: '127.0.0.1:99999/x' })), 'NAME_INVALID');
    assert.equal(code(() => checkRepositoryRequest({ name: 'library/app', namespace: 'a/b' })), 'NAME_INVALID');
    assert.equal(code(() => checkRepositoryRequest({ name: 'library/app', namespace: 'ghcr.io' })), undefined);
    assert.equal(code(() => checkRepositoryRequest({ name: 'library/app', namespace: '' })), undefined);
    assert.equal(code(() => checkRepositoryRequest({ name: 'ghcr.io/acme/tool' })), undefined);
    // An IPv6 literal is well-formed: whether it is served is the router's decision.
    assert.equal(code(() => checkRepositoryRequest({ name: 'library/app', namespace: '[::1]:5000' })), undefined);
    assert.equal(code(() => checkRepositoryRequest({ name: 'library/app', namespace: '[::1]:99999' })), 'NAME_INVALID');
  });
});
