import type { Readable } from 'node:stream';
import { Agent, request, type Dispatcher } from 'undici';
import type { Credentials } from '../config/credentials.js';
import type { Logger } from '../logger.js';
import type { Metrics } from '../metrics.js';
import { OciError } from '../oci/errors.js';
import { declaredMediaType } from '../oci/manifest.js';
import { CircuitBreaker, type BreakerState } from './circuit-breaker.js';
import { createFailureLog } from './failure-log.js';
import { createGuardedConnector, createNetworkPolicy } from './network-policy.js';
import { createUpstreamFailures } from './upstream-failures.js';
import { referrersPage, tagsPage, type ListPage, type ReferrersPage } from './upstream-lists.js';
import { resumableBody } from './resumable-body.js';
import { createTokenSession } from './token-session.js';
import { UpstreamError } from './upstream-error.js';

/** A manifest as an upstream described (HEAD) or sent (GET) it. */
export interface ManifestResponse {
  /** From `Docker-Content-Digest`; upstreams may omit it. */
  readonly digest: string | undefined;
  readonly mediaType: string;
  readonly size: number;
}

/** An upstream blob body. The caller owns `body` and must consume or destroy it. */
export interface BlobResponse {
  readonly size: number | undefined;
  readonly body: Readable;
}

/** What the last exchanges with an upstream showed, for the status page. */
export interface UpstreamHealth {
  readonly lastOkAt: number | undefined;
  readonly lastErrorAt: number | undefined;
  readonly lastError: string | undefined;
  /** From `ratelimit-remaining` (Docker Hub: `76;w=21600`), when the upstream sends it. */
  readonly rateLimitRemaining: number | undefined;
  readonly breaker: BreakerState;
}

export interface RequestOptions {
  readonly signal?: AbortSignal | undefined;
  /** Sent upstream as Basic, or exchanged at the token realm for a Bearer token. Absent: anonymous. */
  readonly credentials?: Credentials | undefined;
}

/**
 * One upstream registry, spoken to over the distribution API with undici. Every failure is an
 * {@link UpstreamError}; a 404 is one with `isNotFound`. Handles the Bearer token flow and
 * follows redirects, never sending credentials to another origin.
 */
export interface Upstream {
  /** The host clients name (`docker.io`). */
  readonly host: string;
  /** `onChunk` gets each chunk's length before it is kept; an OciError it throws stops the read and is rethrown. */
  getManifest(
    repository: string,
    reference: string,
    options: RequestOptions & { accept: readonly string[]; maxBytes: number; onChunk?: (bytes: number) => void },
  ): Promise<ManifestResponse & { bytes: Buffer }>;
  headManifest(repository: string, reference: string, options: RequestOptions & { accept: readonly string[] }): Promise<ManifestResponse>;
  /** With `offset`, the bytes from there on (`Range`, a 206 required): `size` is then what is left. */
  getBlob(repository: string, digest: string, options?: RequestOptions & { offset?: number | undefined }): Promise<BlobResponse>;
  headBlob(repository: string, digest: string, options?: RequestOptions): Promise<{ size: number | undefined }>;
  /** One page of tags/list: the first when `next` is absent, else the page a previous one linked to. */
  listTagsPage(repository: string, options: RequestOptions & { next?: string | undefined }): Promise<ListPage<string>>;
  /**
   * One page of `GET /v2/<repository>/referrers/<digest>` (no filter: the cache filters), the
   * first or the one a previous page linked to; the body is capped at `maxBytes`.
   */
  getReferrersPage(repository: string, digest: string, options: RequestOptions & { next?: string | undefined; maxBytes: number }): Promise<ReferrersPage>;
  health(): UpstreamHealth;
  close(): Promise<void>;
  /** Closes the pool now: in-flight requests and bodies fail (shutdown after its grace period). */
  destroy(): Promise<void>;
}

export interface UpstreamOptions {
  readonly host: string;
  readonly url: string;
  /**
   * Sent as `ns=` on every request (containerd's mirror parameter): `url` is then a mirror that
   * serves this registry among others (`via`), not the registry itself.
   */
  readonly namespace?: string | undefined;
  /** Whether `url` itself is trusted (a listed upstream) or must resolve to allowed addresses (the catch-all). */
  readonly isUrlTrusted: boolean;
  /** More origins redirects and token realms may reach on any address. */
  readonly allowOrigins: readonly string[];
  /** Private ranges (CIDR) untrusted origins may resolve to (the catch-all's). */
  readonly allowPrivate: readonly string[];
  /** Sent as `User-Agent` with every request. */
  readonly userAgent: string;
  /** The `upstream` label of its metrics (default: host); catch-all hosts share one past a few. */
  readonly metricsLabel?: string | undefined;
  readonly timeouts: { readonly connectMs: number; readonly headersMs: number; readonly bodyIdleMs: number; readonly totalMs: number };
  readonly breaker: { readonly failures: number; readonly openForMs: number };
}

type Kind = 'manifest' | 'blob' | 'tags' | 'referrers' | 'token';

const MAX_REDIRECTS = 5;
/** A blob body cut by the network is resumed with `Range` this many times (the fill still verifies the whole digest). */
const RESUME_ATTEMPTS = 3;

function header(headers: Dispatcher.ResponseData['headers'], name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value[0] : value;
}

function contentLength(headers: Dispatcher.ResponseData['headers']): number | undefined {
  const value = Number(header(headers, 'content-length'));
  return Number.isSafeInteger(value) && value >= 0 ? value : undefined;
}

/** Creates the client for one configured upstream. */
export function createUpstream(options: UpstreamOptions, deps: { metrics: Metrics; logger: Logger; now: () => number }): Upstream {
  const { host } = options;
  const label = options.metricsLabel ?? host;
  const deadlineMs = options.timeouts.totalMs;
  const base = new URL(options.url);
  const { namespace } = options;
  let health: Omit<UpstreamHealth, 'breaker'> = { lastOkAt: undefined, lastErrorAt: undefined, lastError: undefined, rateLimitRemaining: undefined };
  const breaker = new CircuitBreaker(
    { failures: options.breaker.failures, openForMs: options.breaker.openForMs },
    {
      now: deps.now,
      onChange: (state) => failures.breakerChanged(state, options.breaker.openForMs),
    },
  );
  const failures = createFailureLog({ host, url: base.origin }, { logger: deps.logger, breaker, setOpenGauge: (value) => deps.metrics.upstreamBreakerOpen.set({ upstream: label }, value) });
  deps.metrics.upstreamBreakerOpen.set({ upstream: label }, 0);

  /** `hasBody`: a blob body follows, whose end (not these headers) is the success, unless this is the breaker's probe. */
  function observe(response: Dispatcher.ResponseData, hasBody: boolean): void {
    const remaining = Number.parseInt(header(response.headers, 'ratelimit-remaining') ?? '', 10);
    const limit = Number.parseInt(header(response.headers, 'ratelimit-limit') ?? '', 10);
    if (Number.isFinite(remaining)) deps.metrics.upstreamRateLimitRemaining.set({ upstream: label }, remaining);
    if (Number.isFinite(limit)) deps.metrics.upstreamRateLimitLimit.set({ upstream: label }, limit);
    const failed = response.statusCode >= 500 || response.statusCode === 429;
    if (failed || !hasBody || breaker.state !== 'closed') failures.record(failed ? `HTTP ${response.statusCode}` : undefined);
    health = {
      ...health,
      ...(failed ? { lastErrorAt: deps.now(), lastError: `HTTP ${response.statusCode}` } : { lastOkAt: deps.now() }),
      ...(Number.isFinite(remaining) && { rateLimitRemaining: remaining }),
    };
  }
  const network = createNetworkPolicy({ trustedOrigins: [...(options.isUrlTrusted ? [base.origin] : []), ...options.allowOrigins], allowPrivate: options.allowPrivate });
  const agent = new Agent({
    // Every connection, the first included, goes through the policy: see network-policy.ts.
    connect: createGuardedConnector(network, { timeout: options.timeouts.connectMs }),
    headersTimeout: options.timeouts.headersMs,
    bodyTimeout: options.timeouts.bodyIdleMs,
    keepAliveTimeout: 30_000,
  });

  const { translate, followable } = createUpstreamFailures({ host, isUrlTrusted: options.isUrlTrusted }, deps);
  const session = createTokenSession({ host, base, deadlineMs }, { now: deps.now, fetch: (url, headers, signal) => dispatch('token', 'GET', url, headers, signal), followable });

  async function dispatch(kind: Kind, method: string, url: URL, headers: Record<string, string>, signal?: AbortSignal) {
    if (!breaker.tryAcquire()) {
      deps.metrics.upstreamRequests.inc({ upstream: label, kind, status: 'breaker_open' });
      throw new UpstreamError('unreachable', host, `upstream ${host} is failing: not contacted for another ${Math.ceil(breaker.retryInMs / 1000)} s (circuit breaker open)`);
    }
    const started = performance.now();
    try {
      const response = await request(url, { dispatcher: agent, method: method as Dispatcher.HttpMethod, headers: { ...headers, 'user-agent': options.userAgent }, signal });
      deps.metrics.upstreamRequests.inc({ upstream: label, kind, status: String(response.statusCode) });
      observe(response, kind === 'blob' && method === 'GET' && (response.statusCode === 200 || response.statusCode === 206));
      return response;
    } catch (err) {
      deps.metrics.upstreamRequests.inc({ upstream: label, kind, status: 'error' });
      if ((err as Error).name === 'AbortError') breaker.recordAbandoned();
      else failures.record((err as { code?: string }).code ?? (err as Error).message);
      // A code, never a message: messages carry addresses, and the status page is for anyone.
      health = { ...health, lastErrorAt: deps.now(), lastError: (err as { code?: string }).code ?? (err as Error).name };
      return translate(err);
    } finally {
      deps.metrics.upstreamRequestSeconds.observe({ upstream: label, kind }, (performance.now() - started) / 1000);
    }
  }

  /**
   * The caller's signal, aborted also at the overall deadline. Not AbortSignal.any: on Node 20 its
   * timeout source can be collected before it fires, and the deadline then never comes.
   */
  function withDeadline(signal: AbortSignal | undefined): AbortSignal {
    if (!signal) return AbortSignal.timeout(deadlineMs);
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(new DOMException('upstream deadline', 'TimeoutError')), deadlineMs).unref();
    signal.addEventListener('abort', () => (clearTimeout(timer), controller.abort(signal.reason)), { once: true });
    return controller.signal;
  }

  /**
   * Sends one request, answering a Bearer challenge once and following redirects. Returns the
   * final response whatever its status; the caller reads or dumps its body.
   */
  async function send(kind: Kind, method: string, path: string, repository: string, extra: Record<string, string>, options: RequestOptions) {
    const { credentials } = options;
    // Everything but a blob body (bounded by cache.fillTimeout) has an overall deadline too.
    const signal = kind === 'blob' ? options.signal : withDeadline(options.signal);
    if (session.isRefusedRecently(credentials)) {
      deps.metrics.upstreamRequests.inc({ upstream: label, kind, status: 'refused_recently' });
      throw new UpstreamError('auth', host, `upstream ${host} refused these credentials moments ago`, { status: 401 });
    }
    const scope = `repository:${repository}:pull`;
    let url = new URL(path, base);
    // Set, not appended: a next-page link from the mirror carries it already.
    if (namespace !== undefined) url.searchParams.set('ns', namespace);
    let auth = session.begin(scope, credentials);
    for (let hops = 0; ; ) {
      const headers = { ...extra };
      // Credentials go to the configured origin only: a redirect to a CDN carries its own signature.
      const authorization = url.origin === base.origin ? session.authorization(auth, credentials) : undefined;
      if (authorization) headers['authorization'] = authorization;
      const response = await dispatch(kind, method, url, headers, signal);
      const status = response.statusCode;
      if (status === 401 && !auth.hasAnsweredChallenge && url.origin === base.origin) {
        await response.body.dump();
        auth = await session.answer(header(response.headers, 'www-authenticate'), scope, credentials, auth);
        continue;
      }
      const location = header(response.headers, 'location');
      if (status >= 300 && status < 400 && location) {
        await response.body.dump();
        if (++hops > MAX_REDIRECTS) throw new UpstreamError('invalid', host, `upstream ${host} redirected more than ${MAX_REDIRECTS} times`);
        url = followable(location, url);
        continue;
      }
      return response;
    }
  }

  async function failure(response: Dispatcher.ResponseData, what: string): Promise<never> {
    await response.body.dump().catch(() => undefined);
    const status = response.statusCode;
    const retryAfter = Number(header(response.headers, 'retry-after'));
    const extra = Number.isFinite(retryAfter) ? { status, retryAfterSeconds: retryAfter } : { status };
    if (status === 401 || status === 403) throw new UpstreamError('auth', host, `upstream ${host} refused access to ${what} (${status})`, extra);
    throw new UpstreamError('status', host, `upstream ${host} answered ${status} for ${what}`, extra);
  }

  function manifestMeta(response: Dispatcher.ResponseData, bytes?: Buffer): ManifestResponse {
    const contentType = header(response.headers, 'content-type')?.split(';')[0]?.trim() ?? '';
    // Some registries label manifests application/json; the manifest's own field is authoritative then.
    const declared = bytes && (contentType === '' || contentType === 'application/json' || contentType === 'text/plain') ? declaredMediaType(bytes) : undefined;
    return {
      digest: header(response.headers, 'docker-content-digest'),
      mediaType: declared ?? contentType,
      size: bytes ? bytes.length : (contentLength(response.headers) ?? 0),
    };
  }

  return {
    host,
    async getManifest(repository, reference, options) {
      const { accept, maxBytes } = options;
      const what = `manifest ${repository}:${reference}`;
      const response = await send('manifest', 'GET', `/v2/${repository}/manifests/${reference}`, repository, { accept: accept.join(', ') }, options);
      if (response.statusCode !== 200) return failure(response, what);
      const declaredLength = contentLength(response.headers);
      if (declaredLength !== undefined && declaredLength > maxBytes) {
        // undici reports a plain destroy as an AbortError event: give it a listener.
        response.body.on('error', () => undefined).destroy();
        throw new UpstreamError('invalid', host, `${what} is ${declaredLength} bytes, over the ${maxBytes}-byte limit`);
      }
      const chunks: Buffer[] = [];
      let length = 0;
      try {
        for await (const chunk of response.body) {
          length += (chunk as Buffer).length;
          if (length > maxBytes) {
            // Leaving the loop destroys the body.
            throw new UpstreamError('invalid', host, `${what} is over the ${maxBytes}-byte limit`);
          }
          options.onChunk?.((chunk as Buffer).length);
          chunks.push(chunk as Buffer);
        }
      } catch (err) {
        if (err instanceof OciError) throw err;
        return translate(err);
      }
      const bytes = Buffer.concat(chunks, length);
      return { ...manifestMeta(response, bytes), bytes };
    },
    async headManifest(repository, reference, options) {
      const response = await send('manifest', 'HEAD', `/v2/${repository}/manifests/${reference}`, repository, { accept: options.accept.join(', ') }, options);
      if (response.statusCode !== 200) return failure(response, `manifest ${repository}:${reference}`);
      await response.body.dump();
      return manifestMeta(response);
    },
    async getBlob(repository, digest, options = {}) {
      const path = `/v2/${repository}/blobs/${digest}`;
      const start = options.offset ?? 0;
      /** Only the asked range, checked: bytes from anywhere else would be spliced in as if they were the rest. */
      async function ranged(from: number, extra: Record<string, string>, isResume: boolean) {
        const response = await send('blob', 'GET', path, repository, { range: `bytes=${from}-`, ...extra }, options);
        if (response.statusCode === 206 && header(response.headers, 'content-range')?.startsWith(`bytes ${from}-`)) return response;
        // A first request's 404 or 503 means what it always means; mid-body, anything but the rest ends the resume.
        if (!isResume && response.statusCode !== 200 && response.statusCode !== 206) return failure(response, `blob ${digest} of ${repository}`);
        await response.body.dump().catch(() => undefined);
        throw new UpstreamError('invalid', host, `upstream ${host} cannot resume blob ${digest} (${response.statusCode})`);
      }
      const response = start > 0 ? await ranged(start, {}, false) : await send('blob', 'GET', path, repository, {}, options);
      // ranged() checked a 206; without an offset only a 200 is the blob.
      if (response.statusCode !== (start > 0 ? 206 : 200)) return failure(response, `blob ${digest} of ${repository}`);
      // Only a strong ETag says "the same bytes" (RFC 9110 §8.8.3): the rest is asked for the same object or not at all.
      const etag = header(response.headers, 'etag');
      const ifMatch = etag && !etag.startsWith('W/') ? { 'if-match': etag } : {};
      const body = resumableBody(response.body, {
        attempts: RESUME_ATTEMPTS,
        reopen: async (offset) => (await ranged(start + offset, ifMatch, true)).body,
        onResume(code, offset, attempt) {
          deps.logger.warn({ upstream: host, digest, code, offset, attempt }, 'blob download cut: resuming with Range');
          deps.metrics.upstreamRequests.inc({ upstream: label, kind: 'blob', status: 'resumed' });
        },
        // Body failures count for the breaker: an upstream that always breaks off mid-body is failing.
        onEnd: (outcome) => (outcome === 'abandoned' ? breaker.recordAbandoned() : failures.record(outcome === 'complete' ? undefined : outcome.code)),
      });
      return { size: contentLength(response.headers), body };
    },
    async headBlob(repository, digest, options = {}) {
      const response = await send('blob', 'HEAD', `/v2/${repository}/blobs/${digest}`, repository, {}, options);
      if (response.statusCode !== 200) return failure(response, `blob ${digest} of ${repository}`);
      await response.body.dump();
      return { size: contentLength(response.headers) };
    },
    async listTagsPage(repository, options) {
      const path = options.next ?? `/v2/${repository}/tags/list`;
      const response = await send('tags', 'GET', path, repository, { accept: 'application/json' }, options);
      if (response.statusCode !== 200) return failure(response, `tags of ${repository}`);
      return tagsPage(response, { base, current: new URL(path, base), what: `tags of ${repository}`, host }).catch(translate);
    },
    async getReferrersPage(repository, digest, options) {
      const path = options.next ?? `/v2/${repository}/referrers/${digest}`;
      const what = `referrers of ${repository}@${digest}`;
      const response = await send('referrers', 'GET', path, repository, { accept: 'application/vnd.oci.image.index.v1+json' }, options);
      // 404 and 405 are answers too: they say the upstream has no referrers API.
      if (![200, 404, 405].includes(response.statusCode)) return failure(response, what);
      return referrersPage(response, { base, current: new URL(path, base), maxBytes: options.maxBytes, what, host }).catch(translate);
    },
    health: () => ({ ...health, breaker: breaker.state }),
    close: () => agent.close(),
    destroy: () => agent.destroy(),
  };
}
