import type { Logger } from '../logger.js';
import { deniedMessage } from './network-policy.js';
import { UpstreamError } from './upstream-error.js';

const TRANSIENT_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'EPIPE', 'UND_ERR_SOCKET', 'UND_ERR_CLOSED']);
const TIMEOUT_CODES = new Set(['UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'ETIMEDOUT']);

/**
 * Turns what undici and the network policy throw into {@link UpstreamError}s for one upstream.
 * Client-facing messages name the upstream host and an error code, never an address or URL (they
 * reach anyone who asks).
 */
export function createUpstreamFailures(options: { host: string; isUrlTrusted: boolean }, deps: { logger: Logger }) {
  const { host } = options;

  function denied(cause?: unknown): UpstreamError {
    deps.logger.warn({ upstream: host, err: (cause as Error | undefined)?.message }, 'upstream request refused by the network policy');
    return new UpstreamError('denied', host, deniedMessage(host), { cause });
  }

  return {
    denied,
    translate(err: unknown): never {
      if (err instanceof UpstreamError) throw err;
      const code = (err as { code?: string }).code ?? '';
      // The overall deadline (upstreams[].timeouts.total) is a timeout; a caller's own abort passes through.
      if ((err as Error).name === 'TimeoutError') throw new UpstreamError('timeout', host, `upstream ${host} timed out (deadline)`, { cause: err });
      if ((err as Error).name === 'AbortError') throw err;
      // For a client-named (catch-all) host, "no such name" reads as a refusal too: otherwise the
      // answers would tell which internal names exist from which do not.
      if (code === 'ERR_PULLTHROUGH_ADDRESS_DENIED' || (!options.isUrlTrusted && (code === 'ENOTFOUND' || code === 'EAI_AGAIN'))) throw denied(err);
      if (TIMEOUT_CODES.has(code)) throw new UpstreamError('timeout', host, `upstream ${host} timed out (${code})`, { cause: err });
      const reason = TRANSIENT_CODES.has(code) ? code : 'connection failed';
      throw new UpstreamError('unreachable', host, `upstream ${host} is unreachable: ${reason}`, { cause: err });
    },
    /** Only http(s) URLs, resolved against `from`; anything else is refused before it is contacted. */
    followable(location: string, from: URL): URL {
      let url: URL;
      try {
        url = new URL(location, from);
      } catch (err) {
        throw new UpstreamError('invalid', host, `upstream ${host} sent an unreadable URL`, { cause: err });
      }
      if (url.protocol !== 'https:' && url.protocol !== 'http:') throw denied(new Error(`scheme ${url.protocol}`));
      return url;
    },
  };
}
