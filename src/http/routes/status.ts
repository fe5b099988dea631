import type { Request, Response } from 'express';
import type { CacheStatus, ImageSummary, StatusReport } from '../../cache/cache-status.js';
import type { ServedHistory } from '../../cache/served-history.js';
import { formatAgo, formatBytes } from '../../config/units.js';
import { labels } from '../request-context.js';
import { renderServedChart } from './served-chart.js';

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
const escape = (text: string) => text.replace(/[&<>"']/g, (c) => ESCAPES[c] ?? c);

const bytes = formatBytes;

function imageRows(images: readonly ImageSummary[], now: number): string {
  if (images.length === 0) return '<tr><td colspan="4" class="empty">nothing cached yet</td></tr>';
  return images
    .map((i) => `<tr><td>${escape(`${i.upstream}/${i.repository}:${i.tag}`)}</td><td class="num">${bytes(i.sizeBytes)}</td><td class="num">${i.pulls}</td><td>${formatAgo(i.lastPulledAt, now)}</td></tr>`)
    .join('');
}

/** The status page: plain server-rendered HTML, no scripts, readable in any browser or `curl`. */
export function renderStatusPage(report: StatusReport, now: number, history?: ServedHistory): string {
  const ratio = report.hitRatio === undefined ? '–' : `${(report.hitRatio * 100).toFixed(1)} %`;
  const served = report.servedBytes.cache + report.servedBytes.upstream + report.servedBytes.peer;
  const memberRows = (report.cluster?.members ?? [])
    .map((m) => `<tr><td>${escape(m.url)}${m.state === 'self' ? ' <span class="tag">this one</span>' : ''}</td><td class="${m.state === 'down' ? 'bad' : 'ok'}">${m.state === 'down' ? 'down (skipped)' : 'up'}</td></tr>`)
    .join('');
  const upstreamRows = report.upstreams
    .map((u) => {
      const healthy = u.isOffline || (u.breaker === 'closed' && (u.lastErrorAt === undefined || (u.lastOkAt !== undefined && u.lastOkAt >= u.lastErrorAt)));
      const state = u.isOffline
        ? 'offline (cache only)'
        : u.breaker !== 'closed'
          ? `breaker ${u.breaker}: ${escape(u.lastError ?? '')}`
          : u.lastOkAt === undefined && u.lastErrorAt === undefined
            ? 'not contacted yet'
            : healthy
              ? 'ok'
              : `failing: ${escape(u.lastError ?? '')}`;
      return `<tr><td>${escape(u.host)}${u.isDefault ? ' <span class="tag">default</span>' : ''}</td><td class="${healthy ? 'ok' : 'bad'}">${state}</td><td>${formatAgo(u.lastOkAt, now)}</td><td class="num">${u.rateLimitRemaining ?? '–'}</td></tr>`;
    })
    .join('');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>pullthrough</title>
<style>
body{font:15px/1.4 system-ui,sans-serif;margin:2rem auto;max-width:60rem;padding:0 1rem;color:#1d2330;background:#fafbfc}
h1{font-size:1.4rem;margin:0 0 1rem}h2{font-size:1.05rem;margin:2rem 0 .5rem}
.cards{display:flex;gap:1rem;flex-wrap:wrap}.card{background:#fff;border:1px solid #dde1e8;border-radius:6px;padding:.8rem 1rem;min-width:10rem}
.card b{display:block;font-size:1.5rem}.card span{color:#5b6475;font-size:.85rem}
table{border-collapse:collapse;width:100%;background:#fff;border:1px solid #dde1e8}th,td{padding:.4rem .6rem;text-align:left;border-bottom:1px solid #eef0f4}
th{font-size:.8rem;color:#5b6475;text-transform:uppercase}.num{text-align:right;font-variant-numeric:tabular-nums}
.ok{color:#18794e}.bad{color:#c0392b}.empty{color:#8a93a3;text-align:center}.tag{font-size:.7rem;background:#e8eefc;border-radius:3px;padding:0 .3rem}
</style></head><body>
<h1>pullthrough</h1>
<div class="cards">
<div class="card" id="hit-ratio"><b>${ratio}</b><span>cache hit ratio</span></div>
<div class="card"><b>${bytes(report.servedBytes.cache)}</b><span>served from cache</span></div>
<div class="card"><b>${bytes(report.servedBytes.upstream)}</b><span>served while filling from upstream</span></div>
${report.cluster ? `<div class="card"><b>${bytes(report.servedBytes.peer)}</b><span>served while filling from cluster members</span></div>` : ''}
<div class="card"><b>${served === 0 ? '–' : `${((report.servedBytes.cache / served) * 100).toFixed(1)} %`}</b><span>bytes saved upstream</span></div>
<div class="card"><b>${bytes(report.storage.bytes)}</b><span>${report.storage.objects} objects on disk</span></div>
</div>
${history ? `<h2>Bytes served, last hour</h2>\n${renderServedChart(history.series())}` : ''}
<h2>Upstreams</h2>
<table id="upstreams"><tr><th>registry</th><th>state</th><th>last success</th><th class="num">rate limit left</th></tr>${upstreamRows}</table>
${report.cluster ? `<h2>Cluster members</h2>
<table id="cluster"><tr><th>member</th><th>state</th></tr>${memberRows}</table>` : ''}
<h2>Most pulled</h2>
<table id="most-pulled"><tr><th>image</th><th class="num">size</th><th class="num">pulls</th><th>last pull</th></tr>${imageRows(report.mostPulled, now)}</table>
<h2>Largest</h2>
<table id="largest"><tr><th>image</th><th class="num">size</th><th class="num">pulls</th><th>last pull</th></tr>${imageRows(report.largest, now)}</table>
<p style="color:#8a93a3;font-size:.8rem">up ${Math.round(report.uptimeSeconds / 60)} min · <a href="/metrics">metrics</a> · <a href="/_pullthrough/status">json</a></p>
</body></html>`;
}

/** `/`, `/_pullthrough/status` (JSON) and `/readyz`. */
export function createStatusHandlers(status: CacheStatus, now: () => number, history?: ServedHistory) {
  return {
    page: async (_req: Request, res: Response) => {
      labels(res).kind = 'status';
      res.type('html').send(renderStatusPage(await status.report(), now(), history));
    },
    json: async (_req: Request, res: Response) => {
      labels(res).kind = 'status';
      res.json(await status.report());
    },
    ready: async (_req: Request, res: Response) => {
      labels(res).kind = 'health';
      const readiness = await status.readiness();
      res.status(readiness.isReady ? 200 : 503).json({ status: readiness.isReady ? 'ready' : 'not ready', checks: readiness.checks });
    },
  };
}
