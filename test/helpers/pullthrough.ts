import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createApp, type App } from '../../src/app.js';
import { parseConfig } from '../../src/config/load-config.js';
import { Writable } from 'node:stream';
import { createLogger, createSilentLogger } from '../../src/logger.js';

/** One access-log line, as pullthrough writes it. */
export interface LoggedRequest {
  readonly method: string;
  readonly path: string;
  readonly status: number;
  readonly kind: string;
  readonly source?: string;
  readonly userAgent?: string;
}

export interface RunningPullthrough {
  readonly app: App;
  /** `http://127.0.0.1:port` */
  readonly url: string;
  /** `127.0.0.1:port` */
  readonly host: string;
  readonly storageRoot: string;
  /** Every request answered, from the access log (empty unless started with `captureRequests`). */
  readonly requests: LoggedRequest[];
  /** Stops the server; keeps the storage unless `keepStorage` is false (the default removes it). */
  close(options?: { keepStorage?: boolean }): Promise<void>;
}

export interface UpstreamSpec {
  host: string;
  url?: string;
  default?: boolean;
  tagTtl?: string;
  tagTtlRules?: Array<{ match?: string; regex?: string; ttl: string }>;
  notFoundTtl?: string;
  offline?: boolean;
  breaker?: { failures?: number; openFor?: string };
  credentials?: { username?: string; password?: string; passwordFile?: string; dockerConfig?: string; shared?: boolean };
  timeouts?: Record<string, string>;
  accessTtl?: string;
  allowOrigins?: string[];
  allowPrivate?: string[];
  via?: string;
  viaFallback?: boolean;
}

/** Starts pullthrough in this process on a loopback port, with a fresh storage root unless one is given. */
export async function startPullthrough(options: {
  upstreams: UpstreamSpec[];
  storageRoot?: string;
  cache?: Record<string, string | number>;
  storage?: Record<string, string | number>;
  server?: Record<string, string | number>;
  admin?: { token?: string; tokenFile?: string };
  now?: () => number;
  captureRequests?: boolean;
  tls?: { cert: string; key: string };
  offline?: boolean;
  /** More top-level config keys (publicUrl, metrics, status, …). */
  extra?: Record<string, unknown>;
}): Promise<RunningPullthrough> {
  const requests: LoggedRequest[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      for (const line of chunk.toString().split('\n')) {
        if (!line) continue;
        const entry = JSON.parse(line) as LoggedRequest & { msg: string };
        if (entry.msg === 'request') requests.push(entry);
      }
      callback();
    },
  });
  const logger = options.captureRequests ? createLogger('info', sink) : createSilentLogger();
  const storageRoot = options.storageRoot ?? (await mkdtemp(path.join(tmpdir(), 'pullthrough-test-')));
  const config = parseConfig(
    {
      listen: '127.0.0.1:0',
      logLevel: 'silent',
      storage: { root: storageRoot, ...options.storage },
      upstreams: options.upstreams,
      ...(options.cache && { cache: options.cache }),
      ...(options.server && { server: options.server }),
      ...(options.tls && { tls: options.tls }),
      ...(options.offline !== undefined && { offline: options.offline }),
      ...(options.admin && { admin: options.admin }),
      ...options.extra,
    },
    {},
    'test',
  );
  const app = await createApp(config, { logger, withDefaultMetrics: false, ...(options.now && { now: options.now }) });
  const address = await app.listen();
  return {
    app,
    url: `${options.tls ? 'https' : 'http'}://127.0.0.1:${address.port}`,
    host: `127.0.0.1:${address.port}`,
    storageRoot,
    requests,
    async close({ keepStorage = false } = {}) {
      await app.close({ graceMs: 2_000 });
      if (!keepStorage) await rm(storageRoot, { recursive: true, force: true });
    },
  };
}

/** The value of one sample in Prometheus text, summed over series whose labels include `labels`. */
export async function metricValue(baseUrl: string, name: string, labels: Record<string, string> = {}): Promise<number> {
  const text = await (await fetch(`${baseUrl}/metrics`)).text();
  let total = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    const wanted = Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`));
    if (wanted) total += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return total;
}
