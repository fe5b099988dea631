import type { Source } from './registry.js';

/** Bytes served per time bucket, oldest first, ending with the bucket that holds `now`. */
export interface ServedSeries {
  /** Start of the first bucket (ms since the epoch). */
  readonly startMs: number;
  readonly bucketMs: number;
  readonly cache: readonly number[];
  readonly upstream: readonly number[];
}

/** Bytes served from the cache and fetched (from upstream or a cluster peer) over a sliding window, for the status page's chart. */
export interface ServedHistory {
  record(source: Source, bytes: number): void;
  series(): ServedSeries;
}

/**
 * A fixed number of buckets (60 one-minute buckets by default): memory does not grow with traffic
 * or uptime, and a bucket older than the window is dropped when the next one is touched.
 */
export function createServedHistory(options: { windowMs: number; bucketMs: number }, deps: { now: () => number }): ServedHistory {
  const count = Math.max(1, Math.ceil(options.windowMs / options.bucketMs));
  const buckets = new Map<number, { cache: number; upstream: number }>();
  const bucketOf = (ms: number) => Math.floor(ms / options.bucketMs);

  return {
    record(source, bytes) {
      if (bytes <= 0) return;
      const current = bucketOf(deps.now());
      let bucket = buckets.get(current);
      if (!bucket) {
        for (const key of buckets.keys()) if (key <= current - count) buckets.delete(key);
        bucket = { cache: 0, upstream: 0 };
        buckets.set(current, bucket);
      }
      // Peers' bytes were fetched for this request, as upstream ones are: the chart shows cache against fetched.
      bucket[source === 'cache' ? 'cache' : 'upstream'] += bytes;
    },
    series() {
      const first = bucketOf(deps.now()) - count + 1;
      const cache: number[] = [];
      const upstream: number[] = [];
      for (let key = first; key < first + count; key++) {
        cache.push(buckets.get(key)?.cache ?? 0);
        upstream.push(buckets.get(key)?.upstream ?? 0);
      }
      return { startMs: first * options.bucketMs, bucketMs: options.bucketMs, cache, upstream };
    },
  };
}
