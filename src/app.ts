import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import path from 'node:path';
import { createAccessPolicy, type ConfiguredCredentials } from './cache/access-policy.js';
import { createBlobFills } from './cache/blob-fill.js';
import { createCacheAdmin } from './cache/cache-admin.js';
import { createClusterNode, type ClusterNode } from './cache/cluster.js';
import { createCacheStatus } from './cache/cache-status.js';
import { createServedHistory } from './cache/served-history.js';
import { createManifestFill, sharingDigestFetches } from './cache/manifest-fill.js';
import { createPullThroughRegistry } from './cache/pull-through-registry.js';
import { createStorageKeeper, type StorageKeeper } from './cache/storage-keeper.js';
import { createTagTtlPolicy } from './cache/tag-freshness.js';
import type { Config } from './config/config.js';
import { loadCredentials } from './config/credentials.js';
import { ConfigError } from './config/load-config.js';
import { parseListenAddress } from './config/units.js';
import { createAuthSessions } from './http/auth-challenge.js';
import { createHttpApp } from './http/create-http-app.js';
import { createTokenRateLimiter } from './http/token-rate-limit.js';
import type { Logger } from './logger.js';
import { createMetrics, type Metrics } from './metrics.js';
import { createBlobStore, type BlobStore } from './storage/blob-store.js';
import { createContentStore } from './storage/content-store.js';
import { createManifestCache } from './storage/manifest-cache.js';
import { createMetadataIndex } from './storage/metadata-index.js';
import { reconcileStorage } from './storage/reconcile.js';
import { acquireStorageLock, type StorageLock } from './storage/storage-lock.js';
import { createNetworkPolicy, isAllowedHost } from './upstream/network-policy.js';
import { createUpstream } from './upstream/upstream-client.js';
import { createUpstreamRouter } from './upstream/upstream-router.js';
import { createViaUpstream } from './upstream/via-upstream.js';

export interface AppDeps {
  readonly logger: Logger;
  readonly now?: () => number;
  /** Collect Node's process metrics too (off in tests that run many instances). @default true */
  readonly withDefaultMetrics?: boolean;
}

export interface App {
  readonly server: Server;
  readonly metrics: Metrics;
  /** Eviction and garbage collection, for the admin API and tests. */
  readonly keeper: StorageKeeper;
  /** Starts listening on `config.listen`; resolves to the bound address. */
  listen(): Promise<AddressInfo>;
  /** Stops accepting, lets running fills end (bounded), closes the index and upstream pools. */
  close(options?: { graceMs?: number }): Promise<void>;
}

const ACCESS_FLUSH_MS = 5_000;
/** Catch-all upstreams kept at once (least recently used closed past it), and how many get a metric label of their own. */
const MAX_CATCH_ALL_HOSTS = 1_000;
const NAMED_CATCH_ALL_HOSTS = 20;
const VERSION = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;
/** Blobs unreferenced and unread for this long, and files the index does not know, are garbage. */
export const GC_GRACE_MS = 3_600_000;
/** Tokens from our token endpoint live this long; clients fetch a new one on a 401. */
const TOKEN_TTL_MS = 3_600_000;

/** Reads a file the config names (TLS keys, the admin token); a missing one stops start-up naming its key. */
function readConfiguredFile(key: string, file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    throw new ConfigError('config', [`${key}: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`], { cause: err });
  }
}

/**
 * Slow-loris bounds. Headers must arrive within `headersTimeout`, and the whole request within
 * `requestTimeout`: clients of a read-only mirror send no bodies, so a trickled one is cut.
 * Responses are not bound by either (a large blob over a slow link takes as long as it takes; a
 * client that stops reading one meets `sendIdleTimeout` in the blob route). Node checks both
 * timeouts every `connectionsCheckingInterval` (30 s by default, which made a 30 s timeout fire
 * after up to 60), so it is checked at a tenth of the shorter timeout, at most every second.
 */
function serverOptions(limits: Config['server']) {
  const shorter = Math.min(limits.headersTimeoutMs, limits.requestTimeoutMs);
  return {
    keepAliveTimeout: 65_000,
    headersTimeout: shorter,
    requestTimeout: limits.requestTimeoutMs,
    connectionsCheckingInterval: Math.max(10, Math.min(1_000, Math.floor(shorter / 10))),
  };
}

const CLIENT_ERROR_ANSWERS: Record<string, string> = {
  ERR_HTTP_REQUEST_TIMEOUT: '408 Request Timeout',
  HPE_HEADER_OVERFLOW: '431 Request Header Fields Too Large',
};

/**
 * A request Node could not parse, or one that timed out: one short answer when the socket can
 * still take it, then the socket is destroyed, so its fd is back at once whatever the peer does
 * (`socket.end` alone left it half-open until the peer closed).
 */
function answerClientError(err: NodeJS.ErrnoException & { rawPacket?: Buffer }, socket: Socket): void {
  // containers/image with `insecure = true` opens with a TLS handshake (first byte 0x16) and
  // falls back to plain HTTP once the connection is closed; an HTTP answer would only confuse it.
  if (err.rawPacket?.[0] === 0x16 || !socket.writable || err.code === 'ECONNRESET') return void socket.destroy();
  const status = CLIENT_ERROR_ANSWERS[err.code ?? ''] ?? '400 Bad Request';
  // A peer that reads nothing may never let the answer drain; it gets no longer than a second.
  const cut = setTimeout(() => socket.destroy(), 1_000).unref();
  socket.once('close', () => clearTimeout(cut));
  socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`, () => socket.destroy());
}

/** This instance as a cluster member, when `cluster` names members and a secret (README "Cluster"). */
function clusterOf(config: Config, options: { userAgent: string; isOffline: (host: string) => boolean }, deps: Parameters<typeof createClusterNode>[1]): ClusterNode | undefined {
  const { cluster } = config;
  if (!cluster?.secretFile || !cluster.self || (cluster.peers.length === 0 && cluster.dns === undefined)) return undefined;
  const secret = readConfiguredFile('cluster.secretFile', cluster.secretFile).toString('utf8').trim();
  if (secret.length < 16) throw new ConfigError('config', [`cluster.secretFile: ${cluster.secretFile} holds ${secret.length} characters; use at least 16`]);
  return createClusterNode({ cluster, self: cluster.self, secret, ...options }, deps);
}

/**
 * The composition root: builds every module from the config, in dependency order, and wires
 * them. Nothing listens until {@link App.listen}.
 */
export async function createApp(config: Config, deps: AppDeps): Promise<App> {
  const store = createBlobStore({ root: config.storage.root });
  await store.init({ purgeTemp: false });
  const lock = await acquireStorageLock(store.root);
  try {
    return await assemble(config, deps, store, lock);
  } catch (err) {
    await lock.release();
    throw err;
  }
}

async function assemble(config: Config, deps: AppDeps, store: BlobStore, lock: StorageLock): Promise<App> {
  const now = deps.now ?? Date.now;
  const { logger } = deps;
  if (lock.isOwner) {
    // A fill that was running when the owner died can never be finished: start clean.
    await store.init({ purgeTemp: true });
  } else {
    // preload's or export's in-process server beside a live one: its fills are in tmp/ and its timer collects garbage.
    logger.warn({ owner: lock.owner.pid, storage: store.root }, 'another pullthrough serves this storage: leaving tmp/, reconciliation and garbage collection to it');
  }
  const index = createMetadataIndex({ path: path.join(store.root, 'index.db') }, { now });
  if (lock.isOwner) await reconcileStorage(store, index, logger);
  const metrics = createMetrics({ withDefaultMetrics: deps.withDefaultMetrics ?? true, storageStats: () => index.stats() });

  const listed = config.upstreams.filter((u) => u.host !== '*');
  const catchAll = config.upstreams.find((u) => u.host === '*');
  const userAgent = `pullthrough/${VERSION}`;
  // A listed upstream's url is where the operator pointed: trusted on any address. Nothing else is.
  const upstreams = listed.map(({ via, viaFallback, ...upstream }) => {
    const options = { ...upstream, url: upstream.url ?? '', isUrlTrusted: true, allowPrivate: [], userAgent };
    return via === undefined ? createUpstream(options, { metrics, logger, now }) : createViaUpstream({ ...options, via, viaFallback }, { metrics, logger, now });
  });
  const defaultHost = config.upstreams.find((u) => u.default)?.host;
  const catchAllNetwork = catchAll && createNetworkPolicy({ trustedOrigins: catchAll.allowOrigins, allowPrivate: catchAll.allowPrivate });
  let catchAllHosts = 0;
  const router = createUpstreamRouter(upstreams, {
    defaultHost,
    // An opt-in: pullthrough then connects to whatever public registry host a client names.
    ...(catchAll &&
      catchAllNetwork && {
        catchAll: {
          maxHosts: MAX_CATCH_ALL_HOSTS,
          isAllowedHost: (host: string) => isAllowedHost(catchAllNetwork, host),
          create: (host: string) =>
            createUpstream(
              // Metric labels stay bounded: the first few hosts by name, the rest as one.
              { ...catchAll, host, url: (catchAll.url ?? 'https://{host}').replace('{host}', host), isUrlTrusted: false, userAgent, metricsLabel: catchAllHosts++ < NAMED_CATCH_ALL_HOSTS ? host : '*' },
              { metrics, logger, now },
            ),
        },
      }),
  });
  const upstreamConfigs = new Map(config.upstreams.map((u) => [u.host, u]));
  const settingsOf = (host: string) => upstreamConfigs.get(host) ?? catchAll;
  const memory = createManifestCache({ maxBytes: config.cache.manifestMemoryBytes });
  const keeper = createStorageKeeper(
    { maxBytes: config.storage.maxBytes, highWatermark: config.storage.highWatermark, lowWatermark: config.storage.lowWatermark, fillTimeoutMs: config.cache.fillTimeoutMs },
    { index, store, memory, metrics, logger, now },
  );
  const evictSoon = () => {
    keeper.maybeEvict().catch((err: unknown) => logger.error({ err: (err as Error).message }, 'eviction failed'));
  };
  const content = createContentStore({ files: store, index });
  const fills = createBlobFills({ fillTimeoutMs: config.cache.fillTimeoutMs, maxConcurrentFills: config.cache.maxConcurrentFills }, { content, space: keeper, metrics, logger, onCommit: evictSoon });
  const manifests = sharingDigestFetches(createManifestFill({ maxManifestBytes: config.cache.maxManifestBytes, readBudgetBytes: config.cache.manifestReadBytes }, { content, index, memory, metrics, logger }));
  const configuredCredentials = new Map<string, ConfiguredCredentials>();
  config.upstreams.forEach((upstream, i) => {
    if (!upstream.credentials) return;
    try {
      const credentials = loadCredentials(upstream.credentials, upstream.host);
      if (credentials) configuredCredentials.set(upstream.host, { credentials, isShared: upstream.credentials.shared });
    } catch (err) {
      throw new ConfigError('config', [`upstreams[${i}].credentials: ${(err as Error).message}`], { cause: err });
    }
  });
  const access = createAccessPolicy({ accessTtlMs: (host) => settingsOf(host)?.accessTtlMs ?? 0, configured: (host) => configuredCredentials.get(host) }, { index, now, logger });
  const isOffline = (host: string) => config.offline || (settingsOf(host)?.offline ?? false);
  const cluster = clusterOf(config, { userAgent, isOffline }, { router, store: content, index, manifests, fills, access, metrics, logger, now });
  const registry = createPullThroughRegistry(
    {
      tagTtlMs: createTagTtlPolicy(config.upstreams),
      notFoundTtlMs: (host) => settingsOf(host)?.notFoundTtlMs ?? 0,
      isOffline,
      prefetchBlobs: config.cache.prefetchBlobs,
    },
    { router, store: content, index, manifests, fills, access, metrics, logger, now, peers: cluster?.sources },
  );

  const status = createCacheStatus({ router, index, store, metrics, now, defaultHost, isOffline, members: cluster?.members, isPublic: (link) => access.isVisible(link, undefined, isOffline(link.upstream)) });
  const adminToken = config.admin.token ?? (config.admin.tokenFile ? readConfiguredFile('admin.tokenFile', config.admin.tokenFile).toString('utf8').trim() : undefined);
  const admin = adminToken ? { admin: createCacheAdmin({ index, store, keeper }), token: adminToken, gcGraceMs: GC_GRACE_MS } : undefined;
  const auth = {
    sessions: createAuthSessions({ ttlMs: TOKEN_TTL_MS, maxBytes: config.server.tokenMemoryBytes }, { now }),
    limiter: createTokenRateLimiter({ perSecond: config.server.tokenRatePerSecond, burst: config.server.tokenBurst }, { now }),
  };
  const servedHistory = createServedHistory({ windowMs: 3_600_000, bucketMs: 60_000 }, { now });
  const app = createHttpApp({
    registry,
    status,
    servedHistory,
    now,
    metrics,
    logger,
    exposeMetrics: config.metrics.enabled,
    sendIdleTimeoutMs: config.server.sendIdleTimeoutMs,
    auth,
    admin,
    metricsToken: config.metrics.requireToken ? adminToken : undefined,
    statusToken: config.status.requireToken ? adminToken : undefined,
    publicUrl: config.publicUrl,
    peers: cluster?.service,
  });
  const server: Server = config.tls
    ? createTlsServer({ ...serverOptions(config.server), cert: readConfiguredFile('tls.cert', config.tls.cert), key: readConfiguredFile('tls.key', config.tls.key) }, app)
    : createServer(serverOptions(config.server), app);
  server.maxConnections = config.server.maxConnections;
  server.on('clientError', answerClientError);

  const flushTimer = setInterval(() => {
    index.flushAccess();
    // Manifests and imports also add bytes; a periodic look catches what the fill hook does not.
    evictSoon();
  }, ACCESS_FLUSH_MS);
  flushTimer.unref();
  const gcTimer =
    config.storage.gcIntervalMs > 0 && lock.isOwner
      ? setInterval(() => {
          keeper.collectGarbage(GC_GRACE_MS).catch((err: unknown) => logger.error({ err: (err as Error).message }, 'garbage collection failed'));
        }, config.storage.gcIntervalMs)
      : undefined;
  gcTimer?.unref();

  return {
    server,
    metrics,
    keeper,
    listen() {
      const { host, port } = parseListenAddress(config.listen);
      return new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, host, () => {
          server.off('error', reject);
          const address = server.address() as AddressInfo;
          const reachable = address.address === '0.0.0.0' ? '127.0.0.1' : address.address === '::' ? '::1' : address.address;
          const url = `${config.tls ? 'https' : 'http'}://${reachable.includes(':') ? `[${reachable}]` : reachable}:${address.port}`;
          lock.setUrl(url).catch((err: unknown) => logger.warn({ err: (err as Error).message }, 'could not record the listen address in the storage lock'));
          const offlineHosts = config.upstreams.filter((u) => isOffline(u.host)).map((u) => u.host);
          logger.info(
            {
              address: `${address.address}:${address.port}`,
              upstreams: config.upstreams.map((u) => `${u.host}=${isOffline(u.host) ? 'offline' : u.url}`),
              storage: store.root,
              ...(config.offline ? { offline: true } : offlineHosts.length > 0 && { offline: offlineHosts }),
            },
            config.offline ? 'pullthrough listening, offline: serving the cache only, contacting no upstream' : 'pullthrough listening',
          );
          resolve(address);
        });
      });
    },
    async close({ graceMs = 10_000 } = {}) {
      clearInterval(flushTimer);
      if (gcTimer) clearInterval(gcTimer);
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      const grace = new Promise<void>((resolve) => setTimeout(resolve, graceMs).unref());
      const drained = fills.drain();
      await Promise.race([Promise.all([closed, drained]), grace]);
      server.closeAllConnections();
      // Past the grace a fill's upstream body is cut (close() would wait for it forever); the
      // fills then fail, discard their temp files, and are done before the index closes.
      await Promise.all([...upstreams, ...router.dynamicUpstreams()].map((u) => u.destroy().catch(() => undefined)));
      await Promise.race([drained, new Promise<void>((resolve) => setTimeout(resolve, 1_000).unref())]);
      await cluster?.close();
      index.close();
      await lock.release();
    },
  };
}
