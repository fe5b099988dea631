import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseChallenges, TokenCache, tokenFromResponse } from '../../../src/upstream/token-auth.js';

describe('WWW-Authenticate', () => {
  it("parses Docker Hub's Bearer challenge", () => {
    const [challenge] = parseChallenges('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/nginx:pull"');
    assert.deepEqual(challenge, {
      scheme: 'bearer',
      params: { realm: 'https://auth.docker.io/token', service: 'registry.docker.io', scope: 'repository:library/nginx:pull' },
    });
  });
  it('parses several challenges, tokens and escapes', () => {
    const challenges = parseChallenges('Basic realm="a \\"b\\"", Bearer realm=https://x/token, error=invalid_token');
    assert.equal(challenges.length, 2);
    assert.deepEqual(challenges[0], { scheme: 'basic', params: { realm: 'a "b"' } });
    assert.deepEqual(challenges[1]?.params, { realm: 'https://x/token', error: 'invalid_token' });
  });
  it('yields nothing for nothing', () => {
    assert.deepEqual(parseChallenges(undefined), []);
    assert.deepEqual(parseChallenges(''), []);
  });
});

describe('token cache', () => {
  it('keeps a token until shortly before it expires', () => {
    let now = 0;
    const cache = new TokenCache(() => now);
    cache.set('scope', 't', 300);
    now = 289_000;
    assert.equal(cache.get('scope'), 't');
    now = 291_000;
    assert.equal(cache.get('scope'), undefined);
  });
  it('stays bounded, dropping the least recently used token', () => {
    const cache = new TokenCache(() => 0, 2);
    cache.set('a', 'ta', 300);
    cache.set('b', 'tb', 300);
    assert.equal(cache.get('a'), 'ta');
    cache.set('c', 'tc', 300);
    assert.equal(cache.get('b'), undefined, 'b was the least recently used');
    assert.equal(cache.get('a'), 'ta');
    assert.equal(cache.get('c'), 'tc');
  });
  it("does not keep tokens that expire within the margin", () => {
    const cache = new TokenCache(() => 0);
    cache.set('scope', 't', 5);
    assert.equal(cache.get('scope'), undefined);
  });
  it('reads token and access_token answers', () => {
    assert.deepEqual(tokenFromResponse({ token: 'a', expires_in: 60 }), { token: 'a', expiresIn: 60 });
    assert.deepEqual(tokenFromResponse({ access_token: 'b' }), { token: 'b', expiresIn: undefined });
    assert.equal(tokenFromResponse({}), undefined);
    assert.equal(tokenFromResponse('x'), undefined);
  });
});
