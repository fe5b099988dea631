import { createMemoryLru } from './memory-lru.js';

/** Token issuance per client address; see {@link createTokenRateLimiter}. */
export interface TokenRateLimiter {
  /** Takes one token for `address`: undefined when allowed, else the seconds until one is. */
  take(address: string): number | undefined;
}

interface Bucket {
  tokens: number;
  updatedAt: number;
}

/** One address's bucket and its map entry, roughly. */
const BUCKET_BYTES = 160;
/** Buckets kept at most: an evicted address starts again with a full bucket, which is harmless. */
const MAX_BUCKET_BYTES = 2 * 2 ** 20;

/**
 * A token bucket per client address: `burst` at once, refilled at `perSecond`. IPv6 clients are
 * keyed by their /64, which one host can fill with addresses. The buckets themselves sit in a
 * bounded LRU, so a flood from many addresses costs a fixed amount of memory.
 */
export function createTokenRateLimiter(options: { perSecond: number; burst: number }, deps: { now: () => number }): TokenRateLimiter {
  const buckets = createMemoryLru<Bucket>({ maxBytes: MAX_BUCKET_BYTES, sizeOf: () => BUCKET_BYTES });
  return {
    take(address) {
      if (options.perSecond <= 0) return undefined;
      const key = clientKey(address);
      const now = deps.now();
      const bucket = buckets.get(key) ?? { tokens: options.burst, updatedAt: now };
      bucket.tokens = Math.min(options.burst, bucket.tokens + ((now - bucket.updatedAt) / 1000) * options.perSecond);
      bucket.updatedAt = now;
      buckets.set(key, bucket);
      if (bucket.tokens >= 1) {
        bucket.tokens -= 1;
        return undefined;
      }
      return Math.max(1, Math.ceil((1 - bucket.tokens) / options.perSecond));
    },
  };
}

/** An IPv4 address (also IPv4-mapped IPv6) as it is; an IPv6 one by its first four groups (its /64). */
export function clientKey(address: string): string {
  const v4 = /^(?:::ffff:)?(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (v4) return v4[1] as string;
  if (!address.includes(':')) return address;
  const [head = '', tail = ''] = address.toLowerCase().split('::');
  const headGroups = head === '' ? [] : head.split(':');
  const tailGroups = tail === '' ? [] : tail.split(':');
  const groups = address.includes('::') ? [...headGroups, ...Array<string>(Math.max(0, 8 - headGroups.length - tailGroups.length)).fill('0'), ...tailGroups] : headGroups;
  return `${groups.slice(0, 4).map((g) => g.replace(/^0+(?=.)/, '')).join(':')}::/64`;
}
