import type { UpstreamRouter } from '../upstream/upstream-router.js';
import { toClientError } from './client-errors.js';
import { createLocalRegistry } from './local-registry.js';
import { createProxyRegistry, type ProxyDeps, type ProxyOptions } from './proxy-registry.js';
import type { BlobContent, Registry, RoutedRegistry } from './registry.js';

export interface PullThroughOptions extends ProxyOptions {
  /** True for an upstream the cache must not contact (`offline`): it is served by the local registry alone. */
  readonly isOffline: (upstreamHost: string) => boolean;
}

export interface PullThroughDeps extends ProxyDeps {
  readonly router: UpstreamRouter;
}

/**
 * The Registry port the HTTP layer calls: each request is routed to its upstream and answered
 * by the proxy registry, a decorator of the local one, or by the local registry alone for an
 * upstream that is offline. Upstream failures leave here as OciErrors (client-errors.ts).
 */
export function createPullThroughRegistry(options: PullThroughOptions, deps: PullThroughDeps): Registry {
  const local = createLocalRegistry(deps);
  const proxy = createProxyRegistry(local, options, deps);
  const registryFor = (host: string): RoutedRegistry => (options.isOffline(host) ? local : proxy);

  async function routed<T>(request: Parameters<UpstreamRouter['route']>[0], read: (registry: RoutedRegistry, route: ReturnType<UpstreamRouter['route']>) => Promise<T>): Promise<T> {
    try {
      const route = deps.router.route(request);
      return await read(registryFor(route.upstream.host), route);
    } catch (err) {
      throw toClientError(err);
    }
  }

  /** A fill that fails before the first byte fails the send: the client still gets an OCI error then. */
  const mapped = (blob: BlobContent): BlobContent => ({ ...blob, send: (dest, sendOptions) => blob.send(dest, sendOptions).catch((err: unknown) => Promise.reject(toClientError(err))) });

  return {
    getManifest: (request, reference, readOptions) => routed(request, (registry, route) => registry.getManifest(route, reference, readOptions)),
    statBlob: (request, digest, readOptions) => routed(request, (registry, route) => registry.statBlob(route, digest, readOptions)),
    getBlob: (request, digest, readOptions) => routed(request, async (registry, route) => mapped(await registry.getBlob(route, digest, readOptions))),
    getReferrers: (request, subject, readOptions) => routed(request, (registry, route) => registry.getReferrers(route, subject, readOptions)),
    listTags: (request, page) => routed(request, (registry, route) => registry.listTags(route, page)),
    async listRepositories(page, credentials) {
      return local.listRepositories(page, credentials, (link) => deps.router.publicName(link.upstream, link.repository));
    },
  };
}
