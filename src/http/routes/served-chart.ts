import type { ServedSeries } from '../../cache/served-history.js';
import { formatBytes } from '../../config/units.js';

const WIDTH = 600;
const HEIGHT = 120;
const PAD = { left: 64, right: 8, top: 8, bottom: 20 };

/** Points of one series as an SVG polyline, scaled to the plot area. */
function points(values: readonly number[], max: number): string {
  const plotW = WIDTH - PAD.left - PAD.right;
  const plotH = HEIGHT - PAD.top - PAD.bottom;
  const step = values.length > 1 ? plotW / (values.length - 1) : 0;
  return values.map((v, i) => `${(PAD.left + i * step).toFixed(1)},${(PAD.top + plotH - (max === 0 ? 0 : (v / max) * plotH)).toFixed(1)}`).join(' ');
}

/**
 * Bytes served per bucket, from the cache and from upstream, as an inline SVG drawn on the
 * server: no script, readable wherever the page is. The `<title>` says the totals for screen
 * readers and text browsers.
 */
export function renderServedChart(series: ServedSeries): string {
  const max = Math.max(...series.cache, ...series.upstream, 0);
  const total = (values: readonly number[]) => values.reduce((a, b) => a + b, 0);
  const minutes = Math.round((series.cache.length * series.bucketMs) / 60_000);
  const perBucket = series.bucketMs >= 60_000 ? `${Math.round(series.bucketMs / 60_000)} min` : `${Math.round(series.bucketMs / 1000)} s`;
  const bottom = HEIGHT - PAD.bottom;
  return `<svg id="served-chart" role="img" viewBox="0 0 ${WIDTH} ${HEIGHT}" width="100%" style="max-width:${WIDTH}px;background:#fff;border:1px solid #dde1e8;border-radius:6px" xmlns="http://www.w3.org/2000/svg">
<title>bytes served in the last ${minutes} min: ${formatBytes(total(series.cache))} from cache, ${formatBytes(total(series.upstream))} from upstream</title>
<line x1="${PAD.left}" y1="${bottom}" x2="${WIDTH - PAD.right}" y2="${bottom}" stroke="#dde1e8"/>
<text x="${PAD.left - 6}" y="${PAD.top + 10}" text-anchor="end" font-size="10" fill="#5b6475">${formatBytes(max)}</text>
<text x="${PAD.left - 6}" y="${bottom}" text-anchor="end" font-size="10" fill="#5b6475">0</text>
<text x="${PAD.left}" y="${HEIGHT - 6}" font-size="10" fill="#5b6475">−${minutes} min</text>
<text x="${WIDTH - PAD.right}" y="${HEIGHT - 6}" text-anchor="end" font-size="10" fill="#5b6475">now · per ${perBucket}</text>
<polyline class="cache" fill="none" stroke="#18794e" stroke-width="2" points="${points(series.cache, max)}"/>
<polyline class="upstream" fill="none" stroke="#c77c02" stroke-width="2" points="${points(series.upstream, max)}"/>
</svg>
<p style="font-size:.8rem;color:#5b6475;margin:.3rem 0"><span style="color:#18794e">━</span> from cache · <span style="color:#c77c02">━</span> from upstream</p>`;
}
