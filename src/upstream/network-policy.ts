import { lookup as dnsLookup, type LookupAddress, type LookupOptions } from 'node:dns';
import { BlockList, isIP } from 'node:net';
import { buildConnector } from 'undici';
import { parseCidr } from '../config/units.js';

/**
 * Thrown (through undici) when a connection would go to an address the operator did not point
 * at: loopback, link-local, private or unspecified, and not allowed by the config.
 */
export class AddressDeniedError extends Error {
  override readonly name = 'AddressDeniedError';
  readonly code = 'ERR_PULLTHROUGH_ADDRESS_DENIED';
  /** The host name or address refused, for the log only (never for a client). */
  readonly target: string;

  constructor(target: string) {
    super(`connection to ${target} refused: not a public address, and not allowed by the config`);
    this.target = target;
  }
}

/**
 * Everything that is not the public internet: RFC 6890 special-purpose ranges, among them the
 * cloud metadata service (169.254.169.254) and the node's own loopback.
 */
const NON_PUBLIC_RANGES: ReadonlyArray<readonly [string, number, 'ipv4' | 'ipv6']> = [
  ['0.0.0.0', 8, 'ipv4'],
  ['10.0.0.0', 8, 'ipv4'],
  ['100.64.0.0', 10, 'ipv4'],
  ['127.0.0.0', 8, 'ipv4'],
  ['169.254.0.0', 16, 'ipv4'],
  ['172.16.0.0', 12, 'ipv4'],
  ['192.0.0.0', 24, 'ipv4'],
  ['192.168.0.0', 16, 'ipv4'],
  ['198.18.0.0', 15, 'ipv4'],
  ['224.0.0.0', 4, 'ipv4'],
  ['240.0.0.0', 4, 'ipv4'],
  ['::', 128, 'ipv6'],
  ['::1', 128, 'ipv6'],
  ['64:ff9b::', 96, 'ipv6'],
  ['fc00::', 7, 'ipv6'],
  ['fe80::', 10, 'ipv6'],
  ['ff00::', 8, 'ipv6'],
];

const nonPublic = new BlockList();
for (const [address, prefix, family] of NON_PUBLIC_RANGES) nonPublic.addSubnet(address, prefix, family);

/** `::ffff:10.0.0.1` is 10.0.0.1 to the kernel: judge it as that. */
function unmapped(address: string): { address: string; family: 'ipv4' | 'ipv6' } {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped) return { address: mapped[1] as string, family: 'ipv4' };
  return { address, family: isIP(address) === 6 ? 'ipv6' : 'ipv4' };
}

/** Whether `address` (an IP literal) is on the public internet. */
export function isPublicAddress(address: string): boolean {
  const ip = unmapped(address.replace(/^\[|\]$/g, ''));
  return isIP(ip.address) !== 0 && !nonPublic.check(ip.address, ip.family);
}

/** The one message of every network-policy refusal, so answers never tell an open port from a closed one. */
export function deniedMessage(host: string): string {
  return `upstream ${host}: the request leads to an address or scheme pullthrough does not connect to`;
}

/**
 * Whether a client-named `host[:port]` may be tried at all: IP literals and `localhost` are judged
 * here, before anything is created for them; other names when they resolve (see the connector).
 */
export function isAllowedHost(policy: NetworkPolicy, host: string): boolean {
  const hostname = host.startsWith('[') ? host.slice(1, host.indexOf(']')) : host.replace(/:\d*$/, '');
  if (isIP(hostname) !== 0) return policy.isAllowedAddress(hostname);
  if (hostname === 'localhost' || hostname.endsWith('.localhost')) return policy.isAllowedAddress('127.0.0.1');
  return true;
}

/** Which connections one upstream may make. */
export interface NetworkPolicy {
  /** Origins the operator pointed at (`http://10.0.0.5:5000`): connected to wherever they resolve. */
  isTrustedOrigin(origin: string): boolean;
  /** Whether an address may be connected to for an origin that is not trusted. */
  isAllowedAddress(address: string): boolean;
}

export function createNetworkPolicy(options: { trustedOrigins: readonly string[]; allowPrivate: readonly string[] }): NetworkPolicy {
  const trusted = new Set(options.trustedOrigins.map((origin) => new URL(origin).origin));
  const allowed = new BlockList();
  for (const cidr of options.allowPrivate) {
    const range = parseCidr(cidr);
    if (range) allowed.addSubnet(range.address, range.prefix, range.family);
  }
  return {
    isTrustedOrigin: (origin) => trusted.has(origin),
    isAllowedAddress(address) {
      if (isPublicAddress(address)) return true;
      const ip = unmapped(address.replace(/^\[|\]$/g, ''));
      return allowed.check(ip.address, ip.family);
    },
  };
}

type LookupCallback = (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void;

/**
 * An undici connector that applies `policy` to the address it actually connects to: names are
 * resolved, every refused address dropped, and the socket opened to what is left, so a name that
 * resolves to a public address when checked and to 127.0.0.1 when connected (DNS rebinding)
 * cannot get through. Trusted origins connect as usual.
 */
export function createGuardedConnector(policy: NetworkPolicy, options: { timeout: number }): buildConnector.connector {
  const lookup = (hostname: string, lookupOptions: LookupOptions, callback: LookupCallback) => {
    dnsLookup(hostname, { ...lookupOptions, all: true }, (err, addresses) => {
      if (err) return callback(err, []);
      const usable = addresses.filter((a) => policy.isAllowedAddress(a.address));
      const first = usable[0];
      if (!first) return callback(new AddressDeniedError(hostname), []);
      if (lookupOptions.all) callback(null, usable);
      else callback(null, first.address, first.family);
    });
  };
  const plain = buildConnector({ timeout: options.timeout });
  const guarded = buildConnector({ timeout: options.timeout, lookup } as buildConnector.BuildOptions);
  return (connectOptions, callback) => {
    const origin = `${connectOptions.protocol}//${connectOptions.host}`;
    if (policy.isTrustedOrigin(origin)) return plain(connectOptions, callback);
    const hostname = connectOptions.hostname.replace(/^\[|\]$/g, '');
    if (isIP(hostname) !== 0 && !policy.isAllowedAddress(hostname)) {
      callback(new AddressDeniedError(hostname), null);
      return;
    }
    return guarded(connectOptions, callback);
  };
}
