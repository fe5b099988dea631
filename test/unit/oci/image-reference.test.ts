import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatImageReference, parseImageReference } from '../../../src/oci/image-reference.js';

describe('image references', () => {
  const cases: Array<[string, string]> = [
    ['nginx', 'docker.io/library/nginx:latest'],
    ['nginx:1.25', 'docker.io/library/nginx:1.25'],
    ['bitnami/redis:7', 'docker.io/bitnami/redis:7'],
    ['index.docker.io/nginx', 'docker.io/library/nginx:latest'],
    ['ghcr.io/acme/tool:1.0', 'ghcr.io/acme/tool:1.0'],
    ['registry.k8s.io/pause:3.9', 'registry.k8s.io/pause:3.9'],
    ['localhost:5001/team/app', 'localhost:5001/team/app:latest'],
    [`quay.io/org/app@sha256:${'a'.repeat(64)}`, `quay.io/org/app@sha256:${'a'.repeat(64)}`],
    [`app:1.0@sha256:${'b'.repeat(64)}`, `docker.io/library/app:1.0@sha256:${'b'.repeat(64)}`],
  ];
  for (const [input, canonical] of cases) {
    it(`reads ${input}`, () => assert.equal(formatImageReference(parseImageReference(input)), canonical));
  }
  it('rejects bad names, tags and digests', () => {
    for (const bad of ['Nginx', 'nginx:-x', 'nginx@sha256:abc', '']) assert.throws(() => parseImageReference(bad), { name: 'OciError' }, bad);
  });
});
