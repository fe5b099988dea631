import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/**
 * Every Prometheus handle pullthrough updates, on a registry of its own (no global state, so
 * two instances in one test process never share counters). Label values are bounded: kinds,
 * results, upstream hosts and status codes, never repository names or digests.
 */
export interface Metrics {
  readonly registry: Registry;
  /** Cache lookups by kind (manifest, blob, tag) and result (hit, miss, revalidated, stale, joined). */
  readonly cacheLookups: Counter<'kind' | 'result'>;
  /** Requests sent upstream by upstream host, kind (manifest, blob, tags, token) and status. */
  readonly upstreamRequests: Counter<'upstream' | 'kind' | 'status'>;
  readonly upstreamRequestSeconds: Histogram<'upstream' | 'kind'>;
  /** Response bytes sent to clients by where they came from (cache, fill). */
  readonly servedBytes: Counter<'source'>;
  /** Upstream bodies that did not match their digest or size; never committed. */
  readonly digestMismatches: Counter;
  readonly prefetches: Counter;
  readonly fillsInFlight: Gauge;
  readonly fillSeconds: Histogram<'result'>;
  /** HTTP requests by kind (manifest, blob, tags, …), method, result (hit, miss, joined, revalidated, stale, error, none) and status. */
  readonly httpRequests: Counter<'kind' | 'method' | 'result' | 'status'>;
  readonly httpRequestSeconds: Histogram<'kind' | 'source'>;
  /** The upstream's `ratelimit-remaining` / `ratelimit-limit` (Docker Hub's pull limit), last seen. */
  readonly upstreamRateLimitRemaining: Gauge<'upstream'>;
  readonly upstreamRateLimitLimit: Gauge<'upstream'>;
  /** Objects and bytes removed to keep the cache under storage.maxBytes. */
  readonly evictions: Counter;
  readonly evictedBytes: Counter;
  /** Objects removed by garbage collection, by kind (blob, file, temp). */
  readonly gcRemoved: Counter<'kind'>;
  /** Storage operations that failed (fill writes, deletions), by operation; ENOSPC shows here. */
  readonly storageErrors: Counter<'operation' | 'code'>;
  /** 1 while an upstream's circuit breaker is open (or probing), 0 when closed. */
  readonly upstreamBreakerOpen: Gauge<'upstream'>;
  /** Requests to cluster members by member and result (ok, not_found, error, breaker_open). */
  readonly peerRequests: Counter<'peer' | 'result'>;
  /** Cluster members by state (up: this one and peers not marked down; down). */
  readonly clusterMembers: Gauge<'state'>;
  /** Requests for an upstream with `via` that went to the upstream directly because the mirror was down. */
  readonly viaFallbacks: Counter<'upstream'>;
}

/** Reads the cache's size when Prometheus scrapes. */
export type StorageStats = () => { bytes: number; objects: number };

/**
 * Builds the handles on a fresh registry; with `withDefaultMetrics`, also Node's process metrics.
 * `storageStats` is read at scrape time, so the size gauges cost nothing between scrapes.
 */
export function createMetrics(options: { withDefaultMetrics: boolean; storageStats?: StorageStats }): Metrics {
  const registry = new Registry();
  // Unprefixed, as every Prometheus client library names them (process_*, nodejs_*): the standard
  // Node.js dashboards and alerts find them; pullthrough's own families carry the prefix.
  if (options.withDefaultMetrics) collectDefaultMetrics({ register: registry });
  const registers = [registry];
  const { storageStats } = options;
  if (storageStats) {
    new Gauge({
      name: 'pullthrough_cache_size_bytes',
      help: 'Bytes of blobs and manifests in the cache.',
      registers,
      collect() {
        this.set(storageStats().bytes);
      },
    });
    new Gauge({
      name: 'pullthrough_cache_objects',
      help: 'Blobs and manifests in the cache.',
      registers,
      collect() {
        this.set(storageStats().objects);
      },
    });
  }
  return {
    registry,
    cacheLookups: new Counter({
      name: 'pullthrough_cache_lookups_total',
      help: 'Cache lookups by kind and result.',
      labelNames: ['kind', 'result'],
      registers,
    }),
    upstreamRequests: new Counter({
      name: 'pullthrough_upstream_requests_total',
      help: 'Requests sent to upstream registries, by upstream, kind and response status.',
      labelNames: ['upstream', 'kind', 'status'],
      registers,
    }),
    upstreamRequestSeconds: new Histogram({
      name: 'pullthrough_upstream_request_duration_seconds',
      help: 'Time to upstream response headers.',
      labelNames: ['upstream', 'kind'],
      buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    }),
    servedBytes: new Counter({
      name: 'pullthrough_served_bytes_total',
      help: 'Bytes of manifests and blobs sent to clients, by source.',
      labelNames: ['source'],
      registers,
    }),
    digestMismatches: new Counter({
      name: 'pullthrough_digest_mismatches_total',
      help: 'Upstream bodies whose digest or size did not match; discarded.',
      registers,
    }),
    prefetches: new Counter({
      name: 'pullthrough_prefetched_blobs_total',
      help: "Blobs of an image fetched ahead of the client once its manifest came from upstream, by how the fill ended (skipped: not prefetched, over a bound).",
      labelNames: ['result'] as const,
      registers,
    }),
    fillsInFlight: new Gauge({
      name: 'pullthrough_fills_in_flight',
      help: 'Blob fills currently streaming from upstreams.',
      registers,
    }),
    fillSeconds: new Histogram({
      name: 'pullthrough_cache_fill_seconds',
      help: 'Duration of blob fills, by result.',
      labelNames: ['result'],
      buckets: [0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600],
      registers,
    }),
    httpRequests: new Counter({
      name: 'pullthrough_http_requests_total',
      help: 'HTTP requests answered, by kind, method, cache result and status.',
      labelNames: ['kind', 'method', 'result', 'status'],
      registers,
    }),
    httpRequestSeconds: new Histogram({
      name: 'pullthrough_http_request_duration_seconds',
      help: 'Time to answer a request, by kind and source (cache, upstream).',
      labelNames: ['kind', 'source'],
      buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30, 120],
      registers,
    }),
    upstreamRateLimitRemaining: new Gauge({
      name: 'pullthrough_upstream_ratelimit_remaining',
      help: "Requests left in the upstream's rate-limit window, from its ratelimit-remaining header.",
      labelNames: ['upstream'],
      registers,
    }),
    evictions: new Counter({ name: 'pullthrough_evictions_total', help: 'Objects evicted to stay under storage.maxBytes.', registers }),
    evictedBytes: new Counter({ name: 'pullthrough_evicted_bytes_total', help: 'Bytes evicted to stay under storage.maxBytes.', registers }),
    gcRemoved: new Counter({ name: 'pullthrough_gc_removed_total', help: 'Objects removed by garbage collection, by kind.', labelNames: ['kind'], registers }),
    storageErrors: new Counter({
      name: 'pullthrough_storage_errors_total',
      help: 'Storage operations that failed, by operation and error code (ENOSPC: disk full).',
      labelNames: ['operation', 'code'],
      registers,
    }),
    viaFallbacks: new Counter({
      name: 'pullthrough_via_fallbacks_total',
      help: 'Requests for an upstream configured with via that went to the upstream directly because the mirror was down.',
      labelNames: ['upstream'],
      registers,
    }),
    upstreamBreakerOpen: new Gauge({
      name: 'pullthrough_upstream_breaker_open',
      help: "1 while the upstream's circuit breaker is open: it is not contacted, cached content is served.",
      labelNames: ['upstream'],
      registers,
    }),
    peerRequests: new Counter({
      name: 'pullthrough_peer_requests_total',
      help: 'Requests to other cluster members for blob and manifest bytes, by member and result.',
      labelNames: ['peer', 'result'],
      registers,
    }),
    clusterMembers: new Gauge({
      name: 'pullthrough_cluster_members',
      help: 'Cluster members by state: up (this instance and peers not marked down) or down.',
      labelNames: ['state'],
      registers,
    }),
    upstreamRateLimitLimit: new Gauge({
      name: 'pullthrough_upstream_ratelimit_limit',
      help: "The upstream's rate limit per window, from its ratelimit-limit header.",
      labelNames: ['upstream'],
      registers,
    }),
  };
}
