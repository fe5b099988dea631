import type { Metrics } from '../metrics.js';
import type { BlobStore } from '../storage/blob-store.js';
import type { ImageSummary, MetadataIndex, ReportIndex } from '../storage/metadata-index.js';

export type { ImageSummary };
import type { UpstreamHealth } from '../upstream/upstream-client.js';
import type { UpstreamRouter } from '../upstream/upstream-router.js';
import type { ClusterMembers } from '../upstream/cluster-members.js';

export interface Readiness {
  readonly isReady: boolean;
  readonly checks: Readonly<Record<'storage' | 'index', string>>;
}

export interface UpstreamStatus extends UpstreamHealth {
  readonly host: string;
  readonly isDefault: boolean;
  readonly isOffline: boolean;
}

/** What the status page shows: all of it read from metrics and the index, nothing from upstreams. */
export interface StatusReport {
  readonly uptimeSeconds: number;
  readonly lookups: Readonly<Record<string, number>>;
  /** Hits (fresh, revalidated or stale) over all lookups; undefined before the first. */
  readonly hitRatio: number | undefined;
  readonly servedBytes: { readonly cache: number; readonly upstream: number; readonly peer: number };
  readonly storage: { readonly bytes: number; readonly objects: number };
  readonly upstreams: readonly UpstreamStatus[];
  readonly mostPulled: readonly ImageSummary[];
  readonly largest: readonly ImageSummary[];
  /** The cluster's members as this one sees them (README "Cluster"); null on a single node. */
  readonly cluster: { readonly self: string; readonly members: ReadonlyArray<{ readonly url: string; readonly state: 'self' | 'up' | 'down' }> } | null;
}

export interface CacheStatus {
  /** Ready means the cache can fill: storage writable and the index answering. Upstreams do not count, so an offline site stays ready. */
  readiness(): Promise<Readiness>;
  report(): Promise<StatusReport>;
}

async function sumBy(metric: Metrics['cacheLookups'] | Metrics['servedBytes'], label: string): Promise<Record<string, number>> {
  const totals: Record<string, number> = {};
  for (const sample of (await metric.get()).values) {
    const key = String((sample.labels as Record<string, string | number | undefined>)[label] ?? '');
    totals[key] = (totals[key] ?? 0) + sample.value;
  }
  return totals;
}

/** The status page is unauthenticated: it names public images only. */
function privacyFilter(isPublic: (link: { upstream: string; repository: string }) => boolean) {
  return (image: ImageSummary): ImageSummary => (isPublic(image) ? image : { ...image, repository: '(private repository)', tag: '', digest: '' });
}

/** How long the index's part of the report is reused: the page is unauthenticated, and a refresh loop must not become index load. */
export const SUMMARY_TTL_MS = 5_000;

interface IndexSummary {
  readonly storage: StatusReport['storage'];
  readonly mostPulled: readonly ImageSummary[];
  readonly largest: readonly ImageSummary[];
}

/**
 * The status page's data. Metrics and upstream health are read live (they are in memory); what
 * comes from the index (sizes, top images, which first writes the batched pull counts) is
 * computed at most once per {@link SUMMARY_TTL_MS}, so the numbers are up to that old.
 */
export function createCacheStatus(deps: {
  router: UpstreamRouter;
  index: ReportIndex & Pick<MetadataIndex, 'flushAccess' | 'ping'>;
  store: BlobStore;
  metrics: Metrics;
  now: () => number;
  defaultHost: string | undefined;
  isOffline: (host: string) => boolean;
  /** The cluster's members, when this instance is one. */
  members?: Pick<ClusterMembers, 'self' | 'list'> | undefined;
  /** Whether anyone may see this repository's name. */
  isPublic: (link: { upstream: string; repository: string }) => boolean;
}): CacheStatus {
  const startedAt = deps.now();
  const hidePrivate = privacyFilter(deps.isPublic);
  let summary: { readonly at: number; readonly value: IndexSummary } | undefined;
  const indexSummary = (): IndexSummary => {
    const now = deps.now();
    if (summary && now - summary.at < SUMMARY_TTL_MS) return summary.value;
    // Pull counts are batched; a status read (at most one per TTL) is rare enough to write them first.
    deps.index.flushAccess();
    const value = {
      storage: deps.index.stats(),
      mostPulled: deps.index.topImages('pulls', 10).map(hidePrivate),
      largest: deps.index.topImages('size', 10).map(hidePrivate),
    };
    summary = { at: now, value };
    return value;
  };
  return {
    async readiness() {
      const checks = { storage: 'ok', index: 'ok' };
      try {
        await deps.store.probeWritable();
      } catch (err) {
        checks.storage = `not writable: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`;
      }
      try {
        deps.index.ping();
      } catch (err) {
        checks.index = `not answering: ${(err as Error).message}`;
      }
      return { isReady: checks.storage === 'ok' && checks.index === 'ok', checks };
    },
    async report() {
      const { storage, mostPulled, largest } = indexSummary();
      const lookups = await sumBy(deps.metrics.cacheLookups, 'result');
      const served = await sumBy(deps.metrics.servedBytes, 'source');
      const hits = (lookups['hit'] ?? 0) + (lookups['revalidated'] ?? 0) + (lookups['stale'] ?? 0);
      const total = Object.values(lookups).reduce((a, b) => a + b, 0);
      return {
        uptimeSeconds: Math.round((deps.now() - startedAt) / 1000),
        lookups,
        hitRatio: total === 0 ? undefined : hits / total,
        servedBytes: { cache: served['cache'] ?? 0, upstream: served['upstream'] ?? 0, peer: served['peer'] ?? 0 },
        storage,
        upstreams: deps.router.upstreams.map((u) => ({ host: u.host, isDefault: u.host === deps.defaultHost, isOffline: deps.isOffline(u.host), ...u.health() })),
        mostPulled,
        largest,
        cluster: deps.members ? { self: deps.members.self, members: deps.members.list() } : null,
      };
    },
  };
}
