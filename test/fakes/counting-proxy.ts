import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { once } from 'node:events';
import { pipeline } from 'node:stream';

export interface CountingProxy {
  readonly url: string;
  readonly requests: Array<{ method: string; path: string }>;
  /** Response body bytes sent back so far. */
  readonly bytes: () => number;
  count(method: string, pattern: RegExp): number;
  close(): Promise<void>;
}

/**
 * A transparent HTTP proxy in front of a real upstream (the distribution registry) that records
 * every request, so tests can count what reached the upstream without trusting our own metrics.
 */
export async function startCountingProxy(target: string): Promise<CountingProxy> {
  const requests: Array<{ method: string; path: string }> = [];
  let bytes = 0;
  const targetUrl = new URL(target);
  const server: Server = createServer((req, res) => {
    requests.push({ method: req.method ?? 'GET', path: new URL(req.url ?? '/', 'http://x').pathname });
    const upstream = request(
      { host: targetUrl.hostname, port: targetUrl.port, method: req.method, path: req.url, headers: { ...req.headers, host: targetUrl.host } },
      (response) => {
        res.writeHead(response.statusCode ?? 502, response.headers);
        response.on('data', (chunk: Buffer) => {
          bytes += chunk.length;
        });
        pipeline(response, res, () => undefined);
      },
    );
    upstream.on('error', () => res.destroy());
    pipeline(req, upstream, () => undefined);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    requests,
    bytes: () => bytes,
    count: (method, pattern) => requests.filter((r) => r.method === method && pattern.test(r.path)).length,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
