import express, { type ErrorRequestHandler, type Express, type NextFunction, type Request, type Response } from 'express';
import type { CacheAdmin } from '../cache/cache-admin.js';
import type { CacheStatus } from '../cache/cache-status.js';
import type { Registry } from '../cache/registry.js';
import type { PeerService } from '../cache/peer-service.js';
import type { ServedHistory } from '../cache/served-history.js';
import type { Logger } from '../logger.js';
import type { Metrics } from '../metrics.js';
import { OciError } from '../oci/errors.js';
import { createTokenHandler, requesterOf, type AuthSessions } from './auth-challenge.js';
import { createErrorHandler, sendOciError } from './error-handler.js';
import { labels, setApiVersion } from './request-context.js';
import { createAdminRouter, requireAdminToken } from './routes/admin.js';
import { createBlobHandler, registryBlobs } from './routes/blobs.js';
import { createPeerRouter } from './routes/cluster.js';
import { createCatalogHandler, createTagsHandler } from './routes/listings.js';
import { createManifestHandler } from './routes/manifests.js';
import { createReferrersHandler } from './routes/referrers.js';
import { createStatusHandlers } from './routes/status.js';
import type { TokenRateLimiter } from './token-rate-limit.js';

export interface HttpAppDeps {
  readonly registry: Registry;
  readonly status: CacheStatus;
  /** Bytes served over the last hour, for the status page's chart; fed by the access log. */
  readonly servedHistory?: ServedHistory | undefined;
  readonly now: () => number;
  readonly metrics: Metrics;
  readonly logger: Logger;
  /** Serve Prometheus metrics at /metrics. */
  readonly exposeMetrics: boolean;
  /** A blob response without progress for this long is dropped (README "Limits"). */
  readonly sendIdleTimeoutMs: number;
  /** The sessions behind our tokens, and the per-address limit on issuing them. */
  readonly auth: { readonly sessions: AuthSessions; readonly limiter: TokenRateLimiter };
  /** The admin API, when an admin token is configured. */
  readonly admin?: { readonly admin: CacheAdmin; readonly token: string; readonly gcGraceMs: number } | undefined;
  /** The admin token that /metrics and the status page then need (`metrics.requireToken`, `status.requireToken`). */
  readonly metricsToken?: string | undefined;
  readonly statusToken?: string | undefined;
  /** Where clients reach this instance, for the 401 realm (`publicUrl`). */
  readonly publicUrl?: string | undefined;
  /** What the other members of a cluster ask this one for; absent on a single node. */
  readonly peers?: PeerService | undefined;
}

/** `/v2/<name>/…`: names contain slashes, so the routes are expressions, not path patterns. */
const MANIFEST_PATH = /^\/v2\/(.+)\/manifests\/([^/]+)$/;
const UPLOAD_PATH = /^\/v2\/(.+)\/blobs\/uploads(?:\/.*)?$/;
const BLOB_PATH = /^\/v2\/(.+)\/blobs\/([^/]+)$/;
const TAGS_PATH = /^\/v2\/(.+)\/tags\/list$/;
const REFERRERS_PATH = /^\/v2\/(.+)\/referrers\/([^/]+)$/;

/** Keeps an upstream failure's cause (the socket error under an UpstreamError) for the access-log line. */
const noteUpstreamFailure: ErrorRequestHandler = (err, _req, res, next) => {
  if (err instanceof OciError && err.upstreamFailure !== undefined) labels(res).upstreamError = err.upstreamFailure;
  next(err);
};

function accessLog(logger: Logger, metrics: Metrics, servedHistory: ServedHistory | undefined) {
  return (req: Request, res: Response, next: NextFunction) => {
    const started = performance.now();
    res.once('close', () => {
      const { kind, source, upstream, sentBytes = 0, expectedBytes } = labels(res);
      const seconds = (performance.now() - started) / 1000;
      const isComplete = res.writableFinished || (expectedBytes !== undefined && sentBytes === expectedBytes);
      // 499: the connection ended before the response did (client gone, or cut on purpose).
      const status = isComplete ? res.statusCode : 499;
      if (source && sentBytes > 0) {
        metrics.servedBytes.inc({ source }, sentBytes);
        servedHistory?.record(source, sentBytes);
      }
      // A 401 with a challenge to a request that sent no credentials is the normal handshake
      // (GET /v2/ → 401 → token → retry), not a failure; rejected credentials stay an error.
      const isChallenge = status === 401 && req.headers.authorization === undefined && res.getHeader('www-authenticate') !== undefined;
      const result = isChallenge ? 'challenge' : status >= 400 ? 'error' : (labels(res).result ?? 'none');
      metrics.httpRequests.inc({ kind, method: req.method, result, status: String(status) });
      metrics.httpRequestSeconds.observe({ kind, source: source ?? 'none' }, seconds);
      logger.info(
        {
          method: req.method,
          path: req.originalUrl,
          status,
          bytes: sentBytes || Number(res.getHeader('content-length') ?? 0),
          durationMs: Math.round(seconds * 1000),
          kind,
          result,
          source,
          upstream,
          upstreamError: labels(res).upstreamError,
          userAgent: req.headers['user-agent'],
        },
        'request',
      );
    });
    next();
  };
}

/**
 * The registry's HTTP face: the distribution-spec pull API over a {@link Registry}, OCI error
 * bodies for everything else. Read-only: push and delete answer 405 UNSUPPORTED. No compression
 * middleware, ever: clients hash the exact bytes they receive.
 */
export function createHttpApp(deps: HttpAppDeps): Express {
  const app = express();
  app.disable('x-powered-by');
  app.disable('etag');
  app.set('query parser', 'simple');
  app.use(accessLog(deps.logger, deps.metrics, deps.servedHistory));

  const status = createStatusHandlers(deps.status, deps.now, deps.servedHistory);
  app.get('/healthz', (_req, res) => {
    labels(res).kind = 'health';
    res.json({ status: 'ok' });
  });
  app.get('/readyz', status.ready);
  const statusGuard = deps.statusToken ? [requireAdminToken(deps.statusToken, 'the status page')] : [];
  app.get('/', ...statusGuard, status.page);
  app.get('/_pullthrough/status', ...statusGuard, status.json);
  if (deps.admin) app.use('/_pullthrough/admin', createAdminRouter(deps.admin.admin, deps.admin.token, deps.admin.gcGraceMs));
  if (deps.exposeMetrics) {
    const metricsGuard = deps.metricsToken ? [requireAdminToken(deps.metricsToken, '/metrics')] : [];
    app.get('/metrics', ...metricsGuard, async (_req, res) => {
      labels(res).kind = 'metrics';
      res.type(deps.metrics.registry.contentType).send(await deps.metrics.registry.metrics());
    });
  }

  if (deps.peers) app.use('/_pullthrough/cluster/v1', createPeerRouter(deps.peers, deps.logger, { sendIdleTimeoutMs: deps.sendIdleTimeoutMs }));

  const { sessions, limiter } = deps.auth;
  app.get('/_pullthrough/token', createTokenHandler(sessions, limiter, deps.now));
  app.use('/v2', (req, res, next) => {
    setApiVersion(res);
    const requester = requesterOf(req, sessions);
    // An unknown token (expired, or issued before a restart) gets a fresh challenge, not anonymity.
    if (requester.isStale) throw new OciError('UNAUTHORIZED', 'the token is expired or unknown: fetch a new one');
    (res.locals as { credentials?: unknown }).credentials = requester.credentials;
    (res.locals as { hasAuthorization?: boolean }).hasAuthorization = requester.isPresent;
    next();
  });
  app.get(['/v2', '/v2/'], (_req, res) => {
    labels(res).kind = 'base';
    // distribution-spec "API Version Check": the challenge here is how docker, podman and skopeo
    // learn where to authenticate; a token (anonymous or not) then gets 200.
    if (!(res.locals as { hasAuthorization?: boolean }).hasAuthorization) throw new OciError('UNAUTHORIZED', 'authenticate at the token endpoint (anonymous is fine for public images)');
    res.json({});
  });
  app.get('/v2/_catalog', createCatalogHandler(deps.registry));
  app.all(MANIFEST_PATH, createManifestHandler(deps.registry));
  app.all(UPLOAD_PATH, () => {
    throw new OciError('UNSUPPORTED', 'blob uploads are not supported: pullthrough is a read-only mirror');
  });
  app.all(BLOB_PATH, createBlobHandler(registryBlobs(deps.registry), deps.logger, { sendIdleTimeoutMs: deps.sendIdleTimeoutMs }));
  app.get(TAGS_PATH, createTagsHandler(deps.registry));
  app.all(REFERRERS_PATH, createReferrersHandler(deps.registry));

  app.use((req, res) => {
    const error =
      req.method === 'GET' || req.method === 'HEAD'
        ? new OciError('NAME_UNKNOWN', `no registry endpoint at ${req.path}`)
        : new OciError('UNSUPPORTED', `${req.method} ${req.path} is not supported: pullthrough is a read-only mirror`);
    sendOciError(res, error);
  });
  app.use(noteUpstreamFailure);
  app.use(createErrorHandler(deps.logger, { publicUrl: deps.publicUrl }));
  return app;
}
