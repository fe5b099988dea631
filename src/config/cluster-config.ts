import { z } from 'zod';
import { duration, withMs } from './schema-units.js';

/** How a member is reached: an http(s) origin (no path), so every member names every other one the same way. */
const memberUrl = z
  .url({ protocol: /^https?$/, error: 'expected an http:// or https:// URL such as http://10.0.3.7:5000' })
  .refine((url) => !URL.canParse(url) || (new URL(url).pathname === '/' && !new URL(url).search && !new URL(url).username), 'expected a bare origin such as http://10.0.3.7:5000 (no path, query or credentials)')
  .transform((url) => new URL(url).origin);

/**
 * `cluster`: the pullthroughs of a cluster share one upstream fetch per blob (README "Cluster").
 * Absent, or without `secretFile`, the instance is a single node.
 */
export const clusterSchema = z
  .strictObject({
    /** How the other members reach this one (the pod IP: PULLTHROUGH_CLUSTER_SELF from the downward API). */
    self: memberUrl.optional(),
    /** Members by URL, this one included or not. @default [] */
    peers: z.array(memberUrl).max(1024).default([]),
    /** A headless Service name whose A/AAAA records are the members, re-resolved every `refresh`; scheme and port are taken from `self`. */
    dns: z.string().min(1).optional(),
    /** Resolvers asked for `dns` (`host` or `host:port`); absent: the system's. */
    dnsServers: z.array(z.string().min(1)).optional(),
    /** How often `dns` is resolved again. @default 30s */
    refresh: duration.default(30_000).refine((ms) => ms >= 1_000, 'at least 1s'),
    /** File holding the secret every member signs peer requests with (at least 16 characters); without it there is no cluster. */
    secretFile: z.string().min(1).optional(),
    /** A peer that does not accept the connection within this long is skipped. @default 250ms */
    connectTimeout: duration.default(250).refine((ms) => ms > 0, 'must be above 0'),
    /** A peer that sends no response headers within this long is skipped. @default 5s */
    firstByteTimeout: duration.default(5_000).refine((ms) => ms > 0, 'must be above 0'),
  })
  .superRefine((c, ctx) => {
    const hasMembers = c.peers.length > 0 || c.dns !== undefined;
    if (hasMembers && c.self === undefined) ctx.addIssue({ code: 'custom', path: ['self'], message: 'needed with peers or dns: how the other members reach this one (PULLTHROUGH_CLUSTER_SELF)' });
    if (hasMembers && c.secretFile === undefined) ctx.addIssue({ code: 'custom', path: ['secretFile'], message: 'needed with peers or dns: members accept peer requests signed with this secret only' });
  })
  .transform((cluster) => withMs(cluster, ['refresh', 'connectTimeout', 'firstByteTimeout']));

export type ClusterConfig = z.output<typeof clusterSchema>;
