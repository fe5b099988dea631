import path from 'node:path';
import { createApp, type App } from '../app.js';
import type { Config } from '../config/config.js';
import { parseListenAddress } from '../config/units.js';
import { createLogger } from '../logger.js';
import { readStorageOwner } from '../storage/storage-lock.js';

/** A pullthrough to pull through: the one already serving this config, or one started here. */
export interface ServerHandle {
  readonly baseUrl: string;
  /** True when this process started it (and so owns the storage while it runs). */
  readonly isInProcess: boolean;
  close(): Promise<void>;
}

async function answers(baseUrl: string): Promise<boolean> {
  try {
    const response = await fetch(`${baseUrl}/_pullthrough/status`, { signal: AbortSignal.timeout(2_000) });
    await response.arrayBuffer();
    return response.ok;
  } catch {
    return false;
  }
}

/**
 * Finds the server for `config` (at its listen address, or `via`) so that preload and export use
 * its fills, single-flight and storage; when none answers, starts one in this process on a
 * loopback port of its own, on the same storage.
 * @throws Error when `via` is given and does not answer.
 */
export async function openServer(config: Config, options: { via?: string | undefined }): Promise<ServerHandle> {
  if (options.via) {
    const baseUrl = options.via.replace(/\/+$/, '');
    if (!(await answers(baseUrl))) throw new Error(`no pullthrough answers at ${baseUrl}`);
    return { baseUrl, isInProcess: false, close: async () => undefined };
  }
  const { host, port } = parseListenAddress(config.listen);
  const probeHost = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host.includes(':') ? `[${host}]` : host;
  const scheme = config.tls ? 'https' : 'http';
  // The server that owns the storage says where it answers; the config's listen address is the fallback.
  // Over TLS the probe verifies the certificate as any client would (NODE_EXTRA_CA_CERTS for a private CA).
  const owner = await readStorageOwner(path.resolve(config.storage.root));
  const candidates = [...new Set([owner?.url, port !== 0 ? `${scheme}://${probeHost}:${port}` : undefined].filter((url): url is string => url !== undefined))];
  for (const running of candidates) {
    if (await answers(running)) return { baseUrl: running, isInProcess: false, close: async () => undefined };
  }

  // Beside a live owner this server leaves tmp/ and garbage collection alone (see storage-lock.ts).
  const app: App = await createApp({ ...config, listen: '127.0.0.1:0', tls: undefined }, { logger: createLogger(config.logLevel === 'debug' ? 'debug' : 'warn'), withDefaultMetrics: false });
  const address = await app.listen();
  return {
    baseUrl: `http://127.0.0.1:${address.port}`,
    isInProcess: true,
    close: () => app.close(),
  };
}
