import type { UpstreamConfig } from '../config/config.js';
import { UpstreamError } from '../upstream/upstream-error.js';

function globToRegExp(glob: string): RegExp {
  const source = glob.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
  return new RegExp(`^${source}$`);
}

/**
 * The freshness window of each tag: the upstream's `tagTtlRules` in order (first match wins),
 * else its `tagTtl`. Patterns are compiled once, here.
 */
export function createTagTtlPolicy(upstreams: readonly Pick<UpstreamConfig, 'host' | 'tagTtlMs' | 'tagTtlRules'>[]): (host: string, tag: string) => number {
  const policies = new Map(
    upstreams.map((u) => [
      u.host,
      {
        fallback: u.tagTtlMs,
        rules: u.tagTtlRules.map((rule) => ({ pattern: rule.regex !== undefined ? new RegExp(rule.regex) : globToRegExp(rule.match ?? '*'), ttl: rule.ttlMs })),
      },
    ]),
  );
  return (host, tag) => {
    const policy = policies.get(host) ?? policies.get('*');
    if (!policy) return 0;
    return policy.rules.find((rule) => rule.pattern.test(tag))?.ttl ?? policy.fallback;
  };
}

/**
 * True while a cached tag may be served without asking the upstream. A `tagTtlMs` of 0 means
 * every request revalidates, as `imagePullPolicy: Always` expects.
 */
export function isTagFresh(checkedAt: number, now: number, tagTtlMs: number): boolean {
  return tagTtlMs > 0 && now - checkedAt < tagTtlMs;
}

/**
 * True for failures that say "the upstream cannot answer now" rather than "the content is not
 * there" or "you may not have it": these are when cached content is served stale
 * (distribution's proxytagservice does the same on any error; we keep 404 and auth apart).
 */
export function isUpstreamOutage(err: unknown): err is UpstreamError {
  return err instanceof UpstreamError && err.isOutage;
}

/** Why a cached answer is served stale: the upstream's failure, for the client's Warning header. */
export function revalidationFailed(err: UpstreamError): string {
  return `Revalidation failed: ${err.message}`;
}
