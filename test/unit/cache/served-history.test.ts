import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createServedHistory } from '../../../src/cache/served-history.js';
import { renderServedChart } from '../../../src/http/routes/served-chart.js';

describe('served history', () => {
  it('sums bytes per minute and source over the last hour, dropping what is older', () => {
    let now = 10 * 3_600_000;
    const history = createServedHistory({ windowMs: 3_600_000, bucketMs: 60_000 }, { now: () => now });
    history.record('cache', 100);
    history.record('upstream', 40);
    now += 30_000;
    history.record('cache', 1);
    now += 60_000;
    history.record('upstream', 7);
    let series = history.series();
    assert.equal(series.cache.length, 60);
    assert.deepEqual(series.cache.slice(-2), [101, 0]);
    assert.deepEqual(series.upstream.slice(-2), [40, 7]);
    assert.equal(series.startMs + 59 * 60_000, Math.floor(now / 60_000) * 60_000);

    now += 3_600_000;
    history.record('cache', 5);
    series = history.series();
    assert.equal(series.cache.reduce((a, b) => a + b, 0), 5, 'an hour later only the new bucket counts');
    assert.equal(series.upstream.reduce((a, b) => a + b, 0), 0);
  });

  it('draws the two series as an inline SVG without script', () => {
    let now = 0;
    const history = createServedHistory({ windowMs: 3_600_000, bucketMs: 60_000 }, { now: () => now });
    history.record('cache', 3 * 1024 * 1024);
    now = 120_000;
    history.record('upstream', 1024 * 1024);
    const svg = renderServedChart(history.series());
    assert.match(svg, /^<svg id="served-chart"/);
    assert.doesNotMatch(svg, /<script|on\w+=/i);
    assert.match(svg, /<title>bytes served in the last 60 min: 3\.0 MiB from cache, 1\.0 MiB from upstream<\/title>/);
    const cache = /class="cache"[^>]*points="([^"]+)"/.exec(svg)?.[1]?.split(' ');
    assert.equal(cache?.length, 60);
    const ys = cache!.map((p) => Number(p.split(',')[1]));
    assert.equal(Math.min(...ys), ys[57], 'the cache peak is three minutes back, at the top');
  });
});
