import { Agent, request, type Dispatcher } from 'undici';
import type { Logger } from '../logger.js';
import type { Metrics } from '../metrics.js';
import { OciError } from '../oci/errors.js';
import { CircuitBreaker, type BreakerState } from './circuit-breaker.js';
import { PEER_SIGNATURE_HEADER, signPeerRequest } from './peer-signature.js';
import type { BlobResponse } from './upstream-client.js';
import { UpstreamError } from './upstream-error.js';

/** Where the peer protocol lives on every member (README "Cluster"). */
export const PEER_PATH = '/_pullthrough/cluster/v1';

/** Another member of the cluster, asked for blob and manifest bytes by digest. */
export interface Peer {
  /** Its origin, as configured or resolved (`http://10.0.3.8:5000`). */
  readonly url: string;
  /** `open` while it failed recently: placement skips it. */
  readonly state: BreakerState;
  /** The blob from `offset` on (a Range request past 0), as the member has it or fills it from `upstreamHost`. */
  getBlob(upstreamHost: string, repository: string, digest: string, options?: { signal?: AbortSignal | undefined; offset?: number }): Promise<BlobResponse>;
  /** A manifest by digest; the caller verifies it. */
  getManifest(upstreamHost: string, repository: string, digest: string, options: { maxBytes: number; onChunk?: ((bytes: number) => void) | undefined }): Promise<{ bytes: Buffer; mediaType: string }>;
  close(): Promise<void>;
}

export interface PeerOptions {
  readonly url: string;
  readonly secret: string;
  readonly connectTimeoutMs: number;
  readonly firstByteTimeoutMs: number;
  readonly userAgent: string;
  /** The `peer` label of its metrics (default: its URL); members past the first few share one. */
  readonly metricsLabel?: string | undefined;
}

/** Consecutive failures after which a peer is left alone, and for how long. */
const BREAKER = { failures: 2, openForMs: 10_000 };
/** A peer body that makes no progress this long is given up (the next source takes over from there). */
const BODY_IDLE_MS = 30_000;

function header(headers: Dispatcher.ResponseData['headers'], name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value[0] : value;
}

/**
 * A member as a source of bytes: signed requests with the cluster secret and no client
 * credentials ever; connect and first byte tightly bounded, so a dead member costs a client at
 * most `connectTimeoutMs` before the next source is tried; a circuit breaker marks it down.
 */
export function createPeer(options: PeerOptions, deps: { metrics: Metrics; logger: Logger; now: () => number }): Peer {
  const label = options.metricsLabel ?? options.url;
  const agent = new Agent({ connect: { timeout: options.connectTimeoutMs }, headersTimeout: options.firstByteTimeoutMs, bodyTimeout: BODY_IDLE_MS, keepAliveTimeout: 30_000 });
  const breaker = new CircuitBreaker(BREAKER, {
    now: deps.now,
    onChange: (state) => deps.logger.warn({ peer: options.url, state }, state === 'open' ? 'cluster member marked down' : 'cluster member is back'),
  });

  async function send(kind: 'blobs' | 'manifests', upstreamHost: string, repository: string, digest: string, headers: Record<string, string>, signal?: AbortSignal) {
    if (!breaker.tryAcquire()) {
      deps.metrics.peerRequests.inc({ peer: label, result: 'breaker_open' });
      throw new UpstreamError('unreachable', options.url, `cluster member ${options.url} is down (circuit breaker open)`);
    }
    const query = new URLSearchParams({ upstream: upstreamHost, repository });
    const pathAndQuery = `${PEER_PATH}/${kind}/${digest}?${query}`;
    let response: Dispatcher.ResponseData;
    try {
      response = await request(new URL(pathAndQuery, options.url), {
        dispatcher: agent,
        method: 'GET',
        headers: { ...headers, [PEER_SIGNATURE_HEADER]: signPeerRequest(options.secret, 'GET', pathAndQuery, deps.now()), 'user-agent': options.userAgent },
        signal,
      });
    } catch (err) {
      if ((err as Error).name === 'AbortError') breaker.recordAbandoned();
      else breaker.recordFailure();
      deps.metrics.peerRequests.inc({ peer: label, result: 'error' });
      const code = (err as { code?: string }).code ?? (err as Error).name;
      const kindOf = code.includes('TIMEOUT') ? 'timeout' : 'unreachable';
      throw new UpstreamError(kindOf, options.url, `cluster member ${options.url} failed: ${code}`, { cause: err });
    }
    if (response.statusCode === 200 || response.statusCode === 206) return response;
    await response.body.dump().catch(() => undefined);
    // A 4xx is an answer (it cannot get the content without the requester's credentials); a 5xx counts against the member.
    const isAnswer = response.statusCode < 500 && response.statusCode !== 429;
    if (isAnswer) breaker.recordSuccess();
    else breaker.recordFailure();
    deps.metrics.peerRequests.inc({ peer: label, result: isAnswer ? 'not_found' : 'error' });
    throw new UpstreamError('status', options.url, `cluster member ${options.url} answered ${response.statusCode} for ${digest}`, { status: response.statusCode });
  }

  return {
    url: options.url,
    get state() {
      return breaker.state;
    },

    async getBlob(upstreamHost, repository, digest, { signal, offset = 0 } = {}) {
      const response = await send('blobs', upstreamHost, repository, digest, offset > 0 ? { range: `bytes=${offset}-` } : {}, signal);
      if (offset > 0 && (response.statusCode !== 206 || !header(response.headers, 'content-range')?.startsWith(`bytes ${offset}-`))) {
        response.body.destroy();
        throw new UpstreamError('invalid', options.url, `cluster member ${options.url} could not resume ${digest} at ${offset}`);
      }
      const length = Number(header(response.headers, 'content-length'));
      const body = response.body;
      // The body's end, not its headers, is the member's success: one that breaks off counts against it.
      body.once('end', () => {
        breaker.recordSuccess();
        deps.metrics.peerRequests.inc({ peer: label, result: 'ok' });
      });
      body.once('error', (err: Error) => {
        if (err.name === 'AbortError' || (err as { code?: string }).code === 'UND_ERR_ABORTED') return breaker.recordAbandoned();
        breaker.recordFailure();
        deps.metrics.peerRequests.inc({ peer: label, result: 'error' });
      });
      return { size: Number.isSafeInteger(length) ? offset + length : undefined, body };
    },

    async getManifest(upstreamHost, repository, digest, { maxBytes, onChunk }) {
      const response = await send('manifests', upstreamHost, repository, digest, {});
      const chunks: Buffer[] = [];
      let total = 0;
      try {
        for await (const chunk of response.body) {
          total += (chunk as Buffer).length;
          if (total > maxBytes) throw new UpstreamError('invalid', options.url, `cluster member ${options.url} sent a manifest over ${maxBytes} bytes`);
          onChunk?.((chunk as Buffer).length);
          chunks.push(chunk as Buffer);
        }
      } catch (err) {
        response.body.destroy();
        // The reader's own refusal (the manifest read budget) says nothing about the member.
        if (err instanceof OciError) throw err;
        breaker.recordFailure();
        deps.metrics.peerRequests.inc({ peer: label, result: 'error' });
        throw err instanceof UpstreamError ? err : new UpstreamError('unreachable', options.url, `cluster member ${options.url} broke off a manifest`, { cause: err });
      }
      breaker.recordSuccess();
      deps.metrics.peerRequests.inc({ peer: label, result: 'ok' });
      return { bytes: Buffer.concat(chunks), mediaType: header(response.headers, 'content-type') ?? 'application/octet-stream' };
    },

    close: () => agent.close(),
  };
}
