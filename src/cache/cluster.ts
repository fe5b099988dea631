import type { ClusterConfig } from '../config/cluster-config.js';
import type { Logger } from '../logger.js';
import type { Metrics } from '../metrics.js';
import type { ContentStore } from '../storage/content-store.js';
import type { MetadataIndex } from '../storage/metadata-index.js';
import { createClusterMembers, type ClusterMembers } from '../upstream/cluster-members.js';
import { createPeer } from '../upstream/peer-client.js';
import type { UpstreamRouter } from '../upstream/upstream-router.js';
import type { AccessPolicy } from './access-policy.js';
import type { BlobFills } from './blob-fill.js';
import { createLocalRegistry } from './local-registry.js';
import type { ManifestFill } from './manifest-fill.js';
import { createPeerService, type PeerService } from './peer-service.js';
import { createPeerSources, type PeerSources } from './peer-source.js';

/** Members that get a metric label of their own. */
const NAMED_MEMBERS = 64;

/** This instance as one member of a cluster: where its fills get bytes, and what it serves the others. */
export interface ClusterNode {
  readonly sources: PeerSources;
  readonly service: PeerService;
  readonly members: ClusterMembers;
  close(): Promise<void>;
}

export function createClusterNode(
  options: { cluster: ClusterConfig; self: string; secret: string; userAgent: string; isOffline: (upstreamHost: string) => boolean },
  deps: { router: UpstreamRouter; store: ContentStore; index: MetadataIndex; manifests: ManifestFill; fills: BlobFills; access: AccessPolicy; metrics: Metrics; logger: Logger; now: () => number },
): ClusterNode {
  const { cluster } = options;
  // Pods come and go with new addresses: metric labels stay bounded, the first members by URL, later ones as one.
  const labelled = new Set<string>();
  const labelFor = (url: string) => {
    if (labelled.has(url) || labelled.size < NAMED_MEMBERS) labelled.add(url);
    return labelled.has(url) ? url : '*';
  };
  const members = createClusterMembers(
    { self: options.self, peers: cluster.peers, dns: cluster.dns, dnsServers: cluster.dnsServers, refreshMs: cluster.refreshMs },
    {
      createPeer: (url) => createPeer({ url, secret: options.secret, connectTimeoutMs: cluster.connectTimeoutMs, firstByteTimeoutMs: cluster.firstByteTimeoutMs, userAgent: options.userAgent, metricsLabel: labelFor(url) }, deps),
      metrics: deps.metrics,
      logger: deps.logger,
    },
  );
  const local = createLocalRegistry(deps);
  return {
    members,
    sources: createPeerSources(members, deps),
    service: createPeerService({ secret: options.secret, isOffline: options.isOffline }, { ...deps, local }),
    close: () => members.close(),
  };
}
