import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { inspect } from 'node:util';
import { describe, it } from 'node:test';
import { basicAuthorization, loadCredentials, makeCredentials, parseBasicAuthorization } from '../../../src/config/credentials.js';

describe('credentials', () => {
  it('parses Basic authorization and ignores what carries no username', () => {
    const parsed = parseBasicAuthorization(`Basic ${Buffer.from('alice:pa:ss').toString('base64')}`);
    assert.equal(parsed?.username, 'alice');
    assert.equal(parsed?.password, 'pa:ss');
    assert.equal(parseBasicAuthorization(`Basic ${Buffer.from(':').toString('base64')}`), undefined, 'containers/image sends this when it has none');
    assert.equal(parseBasicAuthorization('Bearer x'), undefined);
    assert.equal(parseBasicAuthorization(undefined), undefined);
  });
  it('identifies credentials by a hash and keeps the password out of logs', () => {
    const a = makeCredentials('alice', 'secret');
    assert.equal(a.id, makeCredentials('alice', 'secret').id);
    assert.notEqual(a.id, makeCredentials('alice', 'other').id);
    assert.ok(!JSON.stringify(a).includes('secret'));
    assert.ok(!inspect(a).includes('secret'));
    assert.equal(basicAuthorization(a), `Basic ${Buffer.from('alice:secret').toString('base64')}`);
  });
  it('finds Docker Hub entries of a docker config.json under any of its names', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'pullthrough-credentials-'));
    const dockerConfig = path.join(dir, 'config.json');
    const auth = Buffer.from('alice:secret').toString('base64');
    for (const key of ['https://index.docker.io/v1/', 'registry-1.docker.io']) {
      writeFileSync(dockerConfig, JSON.stringify({ auths: { [key]: { auth } } }));
      for (const host of ['docker.io', 'index.docker.io']) assert.equal(loadCredentials({ dockerConfig }, host)?.password, 'secret', `${key} for ${host}`);
      assert.throws(() => loadCredentials({ dockerConfig }, 'ghcr.io'), /no auths entry for ghcr\.io/);
    }
  });
});
