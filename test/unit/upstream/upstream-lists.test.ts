import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { nextLinkPath } from '../../../src/upstream/upstream-lists.js';

describe('nextLinkPath', () => {
  const base = new URL('https://registry.example:5000');
  const current = new URL('https://registry.example:5000/v2/acme/app/tags/list');

  it('follows relative and same-origin links under /v2/', () => {
    assert.equal(nextLinkPath('</v2/acme/app/tags/list?n=2&last=b>; rel="next"', base, current), '/v2/acme/app/tags/list?n=2&last=b');
    assert.equal(nextLinkPath('<https://registry.example:5000/v2/acme/app/tags/list?last=b>; rel=next', base, current), '/v2/acme/app/tags/list?last=b');
    assert.equal(nextLinkPath('</v2/x/tags/list?last=a>; rel="prev", </v2/x/tags/list?last=c>; rel="next"', base, current), '/v2/x/tags/list?last=c');
  });

  it('never follows a link to another origin, outside /v2/, or that is no next link', () => {
    assert.equal(nextLinkPath('<https://evil.example/v2/acme/app/tags/list?last=b>; rel="next"', base, current), undefined);
    assert.equal(nextLinkPath('<http://registry.example:5000/v2/x>; rel="next"', base, current), undefined, 'another scheme is another origin');
    assert.equal(nextLinkPath('</token?scope=x>; rel="next"', base, current), undefined);
    assert.equal(nextLinkPath('</v2/x/tags/list?last=b>; rel="prev"', base, current), undefined);
    assert.equal(nextLinkPath(undefined, base, current), undefined);
    assert.equal(nextLinkPath('garbage', base, current), undefined);
  });
});
