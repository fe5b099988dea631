import { createHash } from 'node:crypto';
import { Resolver } from 'node:dns/promises';
import type { Logger } from '../logger.js';
import type { Metrics } from '../metrics.js';
import type { Peer } from './peer-client.js';

/** A member in placement order: this instance itself, or a peer to ask. */
export type Member = { readonly isSelf: true; readonly url: string } | { readonly isSelf: false; readonly url: string; readonly peer: Peer };

/** The members of the cluster as this instance knows them now. */
export interface ClusterMembers {
  readonly self: string;
  /**
   * Every live member (self always, peers whose breaker is not open) in rendezvous order for
   * `key`: the first is the key's owner. A member joining or leaving moves only the keys it
   * ranks first for.
   */
  rank(key: string): Member[];
  /** Every known member with its state, for the status page. */
  list(): Array<{ url: string; state: 'self' | 'up' | 'down' }>;
  close(): Promise<void>;
}

export interface ClusterMembersOptions {
  readonly self: string;
  readonly peers: readonly string[];
  readonly dns?: string | undefined;
  readonly dnsServers?: readonly string[] | undefined;
  readonly refreshMs: number;
}

/** Rendezvous (highest random weight) score: the first 8 bytes of sha256(member, key). */
export function rendezvousScore(member: string, key: string): bigint {
  return createHash('sha256').update(`${member}\n${key}`).digest().readBigUInt64BE(0);
}

/** Members by descending score for `key` (ties, which sha256 makes theoretical, by URL). */
export function rendezvousOrder<T extends { readonly url: string }>(members: readonly T[], key: string): T[] {
  return members
    .map((member) => ({ member, score: rendezvousScore(member.url, key) }))
    .sort((a, b) => (a.score === b.score ? a.member.url.localeCompare(b.member.url) : a.score > b.score ? -1 : 1))
    .map((entry) => entry.member);
}

/** Most members taken from one DNS answer: a hostile or broken resolver cannot make thousands of clients. */
const MAX_DNS_MEMBERS = 1024;

/**
 * The static `peers` plus, with `dns`, the addresses a headless Service resolves to (re-resolved
 * every `refreshMs`; a failed resolution keeps the last answer). Members are addressed with the
 * scheme and port of `self`, so self is recognised in the answer by its own URL.
 */
export function createClusterMembers(
  options: ClusterMembersOptions,
  deps: { createPeer: (url: string) => Peer; metrics: Metrics; logger: Logger },
): ClusterMembers {
  const self = new URL(options.self);
  const peers = new Map<string, Peer>();
  let fromDns: string[] = [];

  function sync(): void {
    const wanted = new Set([...options.peers, ...fromDns].filter((url) => url !== self.origin));
    for (const [url, peer] of peers) {
      if (!wanted.has(url)) {
        peers.delete(url);
        void peer.close().catch(() => undefined);
      }
    }
    for (const url of wanted) if (!peers.has(url)) peers.set(url, deps.createPeer(url));
    report();
  }

  function report(): void {
    let down = 0;
    for (const peer of peers.values()) if (peer.state === 'open') down += 1;
    deps.metrics.clusterMembers.set({ state: 'up' }, peers.size - down + 1);
    deps.metrics.clusterMembers.set({ state: 'down' }, down);
  }

  const resolver = new Resolver({ timeout: 2_000, tries: 2 });
  if (options.dnsServers?.length) resolver.setServers([...options.dnsServers]);
  async function resolve(): Promise<void> {
    if (options.dns === undefined) return;
    const name = options.dns;
    const [v4, v6] = await Promise.all([resolver.resolve4(name).catch(() => [] as string[]), resolver.resolve6(name).catch(() => [] as string[])]);
    const addresses = [...v4, ...v6].slice(0, MAX_DNS_MEMBERS);
    if (addresses.length === 0) {
      deps.logger.warn({ dns: name }, 'cluster.dns resolved to no address: keeping the members known so far');
      return;
    }
    fromDns = addresses.map((address) => `${self.protocol}//${address.includes(':') ? `[${address}]` : address}${self.port ? `:${self.port}` : ''}`);
    sync();
  }

  sync();
  let timer: NodeJS.Timeout | undefined;
  if (options.dns !== undefined) {
    void resolve();
    timer = setInterval(() => void resolve(), options.refreshMs);
    timer.unref();
  }

  return {
    self: self.origin,
    rank(key) {
      const live: Member[] = [{ isSelf: true, url: self.origin }];
      for (const peer of peers.values()) if (peer.state !== 'open') live.push({ isSelf: false, url: peer.url, peer });
      report();
      return rendezvousOrder(live, key);
    },
    list: () => [{ url: self.origin, state: 'self' as const }, ...[...peers.values()].map((peer) => ({ url: peer.url, state: peer.state === 'open' ? ('down' as const) : ('up' as const) }))],
    async close() {
      clearInterval(timer);
      await Promise.all([...peers.values()].map((peer) => peer.close().catch(() => undefined)));
    },
  };
}
