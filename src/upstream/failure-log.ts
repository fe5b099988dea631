import type { Logger } from '../logger.js';

/**
 * Logs an upstream's health changes, not its every failure: one warning naming the cause when it
 * starts failing (`ECONNREFUSED`, `HTTP 503`), one info line when it answers again. Per-request
 * causes go on the access-log lines; this keeps an outage from flooding the log at warn.
 */
export interface FailureLog {
  /** A request's outcome, passed on to the breaker: the cause it failed for, or undefined when the upstream answered (a 4xx included: it is up). */
  record(cause: string | undefined): void;
  /** The circuit breaker changed: set its gauge; on opening, warn naming the cause that keeps failing (closing is told by "answers again"). */
  breakerChanged(state: 'closed' | 'open' | 'half-open', openForMs: number): void;
}

export function createFailureLog(
  options: { host: string; url: string },
  deps: { logger: Logger; breaker: { recordFailure(): void; recordSuccess(): void }; setOpenGauge: (value: 0 | 1) => void },
): FailureLog {
  let cause: string | undefined;
  return {
    record(next) {
      if (cause === undefined && next !== undefined) deps.logger.warn({ upstream: options.host, url: options.url, err: next }, `upstream ${options.host} is failing: ${next}`);
      if (cause !== undefined && next === undefined) deps.logger.info({ upstream: options.host, lastError: cause }, `upstream ${options.host} answers again`);
      cause = next;
      if (next === undefined) deps.breaker.recordSuccess();
      else deps.breaker.recordFailure();
    },
    breakerChanged(state, openForMs) {
      deps.setOpenGauge(state === 'closed' ? 0 : 1);
      if (state !== 'open') return;
      deps.logger.warn(
        { upstream: options.host, breaker: 'open', openForMs, err: cause },
        `upstream ${options.host} keeps failing (${cause ?? 'unknown cause'}): breaker open, not contacting it for ${Math.round(openForMs / 1000)} s`,
      );
    },
  };
}
