import { LRUCache } from 'lru-cache';
import { OciError } from '../oci/errors.js';
import { DOCKER_HUB_HOSTS, isDockerHubHost, isRegistryHost, isValidRegistryHost, parseRepositoryName, type RepositoryRequest } from '../oci/reference.js';
import type { Upstream } from './upstream-client.js';
import { deniedMessage } from './network-policy.js';
import { UpstreamError } from './upstream-error.js';

/** The catch-all: upstreams made on demand for hosts clients name. */
export interface CatchAll {
  create(host: string): Upstream;
  /** False for hosts refused before any lookup (private IP literals, localhost), unless the config allows them. */
  isAllowedHost(host: string): boolean;
  /** How many made upstreams are kept; the least recently used one is closed past it. */
  readonly maxHosts: number;
}


/** Where a request goes: the upstream and the repository name as that upstream knows it. */
export interface Route {
  readonly upstream: Upstream;
  readonly repository: string;
}

/** Resolves requests to upstreams; see {@link createUpstreamRouter}. */
export interface UpstreamRouter {
  /** @throws OciError NAME_INVALID for a bad name; NAME_UNKNOWN for a host no upstream serves. */
  route(request: RepositoryRequest): Route;
  /** The name a client of this instance would use for a cached repository (for `_catalog`). */
  publicName(upstreamHost: string, repository: string): string;
  readonly upstreams: readonly Upstream[];
  /** The catch-all's upstreams made so far and still kept (for shutdown). */
  dynamicUpstreams(): Upstream[];
}

/**
 * Routes by, in order: containerd's `ns=` parameter, a registry host as the name's first path
 * component, and the upstream marked default. Docker Hub names get `library/` as its clients add.
 */
export function createUpstreamRouter(
  upstreams: readonly Upstream[],
  options: { defaultHost: string | undefined; catchAll?: CatchAll | undefined },
): UpstreamRouter {
  const byHost = new Map<string, Upstream>();
  for (const upstream of upstreams) {
    const host = upstream.host.toLowerCase();
    byHost.set(host, upstream);
    if (isDockerHubHost(host)) for (const alias of DOCKER_HUB_HOSTS) if (!byHost.has(alias)) byHost.set(alias, upstream);
  }
  const fallback = options.defaultHost === undefined ? undefined : byHost.get(options.defaultHost.toLowerCase());
  const configured = upstreams.map((u) => u.host).join(', ');

  const { catchAll } = options;
  // An LRU: a flood of made-up hosts pushes out only other made-up hosts that stopped being asked for.
  const dynamic = catchAll
    ? new LRUCache<string, Upstream>({
        max: catchAll.maxHosts,
        dispose: (upstream) => void upstream.close().catch(() => undefined),
      })
    : undefined;

  function lookup(host: string): Upstream {
    const key = host.toLowerCase();
    let upstream = byHost.get(key) ?? dynamic?.get(key);
    if (!upstream && catchAll && dynamic && isRegistryHost(host)) {
      if (!catchAll.isAllowedHost(key)) throw new UpstreamError('denied', key, deniedMessage(key));
      if (isValidRegistryHost(host)) {
        upstream = catchAll.create(key);
        dynamic.set(key, upstream);
      }
    }
    if (!upstream) {
      throw new OciError('NAME_UNKNOWN', `no upstream is configured for registry ${host}; configured: ${configured}`, {
        detail: { host, configured: upstreams.map((u) => u.host) },
      });
    }
    return upstream;
  }

  function normalize(upstream: Upstream, repository: string): string {
    const name = parseRepositoryName(repository);
    return isDockerHubHost(upstream.host) && !name.includes('/') ? `library/${name}` : name;
  }

  return {
    upstreams,
    dynamicUpstreams: () => [...(dynamic?.values() ?? [])],
    route({ name, namespace }) {
      if (namespace !== undefined && namespace !== '') {
        const upstream = lookup(namespace);
        return { upstream, repository: normalize(upstream, name) };
      }
      const slash = name.indexOf('/');
      const first = slash === -1 ? name : name.slice(0, slash);
      if (slash !== -1 && isRegistryHost(first)) {
        const upstream = lookup(first);
        return { upstream, repository: normalize(upstream, name.slice(slash + 1)) };
      }
      if (!fallback) {
        throw new OciError('NAME_UNKNOWN', `no default upstream: prefix the name with a registry host (configured: ${configured})`);
      }
      return { upstream: fallback, repository: normalize(fallback, name) };
    },
    publicName(upstreamHost, repository) {
      return fallback?.host === upstreamHost ? repository : `${upstreamHost}/${repository}`;
    },
  };
}
