import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createMetrics } from '../../src/metrics.js';

describe('metrics', () => {
  it("exports Node's process metrics under the names every Prometheus client uses, and its own under pullthrough_", async () => {
    const metrics = createMetrics({ withDefaultMetrics: true, storageStats: () => ({ bytes: 0, objects: 0 }) });
    const names = (await metrics.registry.getMetricsAsJSON()).map((m) => m.name);
    for (const standard of ['process_resident_memory_bytes', 'process_cpu_seconds_total', 'nodejs_heap_size_used_bytes', 'nodejs_eventloop_lag_seconds']) {
      assert.ok(names.includes(standard), `${standard} in ${names.join(', ')}`);
    }
    for (const name of names) {
      assert.ok(/^(pullthrough|process|nodejs)_/.test(name), name);
      assert.doesNotMatch(name, /^pullthrough_(process|nodejs)_/);
    }
    assert.ok(names.includes('pullthrough_http_requests_total'));
  });
});
