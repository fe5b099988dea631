import type { Logger } from '../logger.js';
import type { Metrics } from '../metrics.js';
import { createUpstream, type Upstream, type UpstreamHealth, type UpstreamOptions } from './upstream-client.js';
import { UpstreamError } from './upstream-error.js';

export interface ViaUpstreamOptions extends UpstreamOptions {
  /** The mirror's origin. Operator-pointed like `url`: trusted on any address, token realm included. */
  readonly via: string;
  /** Whether a request goes to `url` directly while the mirror is down. */
  readonly viaFallback: boolean;
}

function latest(a: number | undefined, b: number | undefined): number | undefined {
  return a === undefined ? b : b === undefined ? a : Math.max(a, b);
}

/** A next-page path from the mirror, as the upstream itself would take it: `ns=` is for mirrors only. */
function withoutNamespace(next: string | undefined): string | undefined {
  if (next === undefined) return undefined;
  const url = new URL(next, 'http://next.invalid');
  url.searchParams.delete('ns');
  return `${url.pathname}${url.search}`;
}

/**
 * One upstream reached through another mirror (a regional pullthrough, or any mirror that
 * understands containerd's `?ns=`): every request goes to the mirror first. When the mirror is
 * down ({@link UpstreamError.isOutage}: no connection, timeout, 429, 5xx, its breaker open) the
 * request goes to the upstream's own `url` (unless `viaFallback` is off); the mirror's other answers (401,
 * 403, 404, a bad body) are the upstream's answers, relayed. To the cache this is one Upstream:
 * access proofs come from those relayed answers as from the upstream's own.
 *
 * Only the start of an exchange falls back: a blob body the mirror cuts later is the fill's
 * failure (resumed from the mirror, see resumable-body.ts), as with any upstream.
 */
export function createViaUpstream(options: ViaUpstreamOptions, deps: { metrics: Metrics; logger: Logger; now: () => number }): Upstream {
  const label = options.metricsLabel ?? options.host;
  // Its own pool, breaker, tokens and metrics label: the mirror's health is not the upstream's.
  const mirror = createUpstream({ ...options, url: options.via, namespace: options.host, metricsLabel: `${label}+via` }, deps);
  const direct = options.viaFallback ? createUpstream(options, deps) : undefined;

  async function attempt<T>(toMirror: (u: Upstream) => Promise<T>, toDirect: (u: Upstream) => Promise<T> = toMirror): Promise<T> {
    try {
      return await toMirror(mirror);
    } catch (err) {
      if (!(err instanceof UpstreamError) || !err.isOutage) throw err;
      if (!direct) {
        // Say which way failed: the upstream itself may be fine. Still no address: clients read this.
        const { status, retryAfterSeconds } = err;
        throw new UpstreamError(err.kind, err.upstream, `${err.message} (its via mirror; viaFallback is off)`, {
          cause: err,
          ...(status !== undefined && { status }),
          ...(retryAfterSeconds !== undefined && { retryAfterSeconds }),
        });
      }
      deps.metrics.viaFallbacks.inc({ upstream: label });
      // The mirror's client logs its failing and recovering once each (failure-log.ts): this line is per request.
      deps.logger.debug({ upstream: options.host, err: err.message }, 'mirror (via) is down: asking the upstream directly');
      return toDirect(direct);
    }
  }

  return {
    host: options.host,
    getManifest: (repository, reference, requestOptions) => attempt((u) => u.getManifest(repository, reference, requestOptions)),
    headManifest: (repository, reference, requestOptions) => attempt((u) => u.headManifest(repository, reference, requestOptions)),
    getBlob: (repository, digest, requestOptions) => attempt((u) => u.getBlob(repository, digest, requestOptions)),
    headBlob: (repository, digest, requestOptions) => attempt((u) => u.headBlob(repository, digest, requestOptions)),
    listTagsPage: (repository, requestOptions) =>
      attempt(
        (u) => u.listTagsPage(repository, requestOptions),
        (u) => u.listTagsPage(repository, { ...requestOptions, next: withoutNamespace(requestOptions.next) }),
      ),
    getReferrersPage: (repository, digest, requestOptions) =>
      attempt(
        (u) => u.getReferrersPage(repository, digest, requestOptions),
        (u) => u.getReferrersPage(repository, digest, { ...requestOptions, next: withoutNamespace(requestOptions.next) }),
      ),
    health(): UpstreamHealth {
      const viaMirror = mirror.health();
      if (!direct) return viaMirror;
      const own = direct.health();
      const isMirrorLater = (viaMirror.lastErrorAt ?? -Infinity) >= (own.lastErrorAt ?? -Infinity);
      // Requests get through while either way does: the breaker shown is the one they meet.
      return {
        lastOkAt: latest(viaMirror.lastOkAt, own.lastOkAt),
        lastErrorAt: latest(viaMirror.lastErrorAt, own.lastErrorAt),
        lastError: isMirrorLater ? viaMirror.lastError : own.lastError,
        rateLimitRemaining: own.rateLimitRemaining ?? viaMirror.rateLimitRemaining,
        breaker: viaMirror.breaker === 'closed' ? 'closed' : own.breaker,
      };
    },
    close: async () => void (await Promise.all([mirror.close(), direct?.close()])),
    destroy: async () => void (await Promise.all([mirror.destroy(), direct?.destroy()])),
  };
}
