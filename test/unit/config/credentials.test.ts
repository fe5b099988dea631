import assert from 'node:assert/strict';
import { inspect } from 'node:util';
import { describe, it } from 'node:test';
import { basicAuthorization, makeCredentials, parseBasicAuthorization } from '../../../src/config/credentials.js';

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
});
