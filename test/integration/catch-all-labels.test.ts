import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import request from 'supertest';
import { startFakeUpstream } from '../fakes/fake-upstream.js';
import { startPullthrough } from '../helpers/pullthrough.js';

describe('catch-all metrics', () => {
  it('name the first 20 catch-all hosts and count the rest under upstream="*"', async () => {
    const upstream = await startFakeUpstream();
    const cache = await startPullthrough({ upstreams: [{ host: 'docker.io', url: upstream.url, default: true }, { host: '*', url: 'http://{host}', allowPrivate: ['127.0.0.0/8'] }] });
    try {
      // 30 made-up hosts on closed loopback ports: each answer is a quick 503.
      for (let i = 1; i <= 30; i++) await request(cache.url).get(`/v2/team/app/manifests/1.0?ns=${encodeURIComponent(`127.0.0.${i}:1`)}`).expect(503);
      const text = await (await fetch(`${cache.url}/metrics`)).text();
      const labels = new Set([...text.matchAll(/^pullthrough_upstream_requests_total\{[^}]*upstream="([^"]+)"/gm)].map((m) => m[1]));
      assert.ok(labels.has('*'), 'the rest share one label');
      assert.ok(labels.size <= 21, `${labels.size} upstream labels`);
    } finally {
      await cache.close();
      await upstream.close();
    }
  });
});
