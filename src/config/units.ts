/** Parsers for the human units config files use. Each throws an Error whose message says what is accepted. */
import { isIP } from 'node:net';

const DURATION = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/;
const DURATION_MS = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

/** `0`, `250ms`, `90s`, `5m`, `1h`, `7d` (or a number of seconds) → milliseconds. */
export function parseDurationMs(input: string | number): number {
  if (typeof input === 'number') {
    if (Number.isFinite(input) && input >= 0) return Math.round(input * 1000);
  } else {
    const text = input.trim();
    if (text === '0') return 0;
    const match = DURATION.exec(text);
    if (match) return Math.round(Number(match[1]) * DURATION_MS[match[2] as keyof typeof DURATION_MS]);
  }
  throw new Error(`expected a duration such as 0, 500ms, 90s, 5m, 1h or 7d, got ${JSON.stringify(input)}`);
}

const SIZE = /^(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)?$/;
const SIZE_BYTES = {
  B: 1,
  KB: 1e3,
  MB: 1e6,
  GB: 1e9,
  TB: 1e12,
  KiB: 2 ** 10,
  MiB: 2 ** 20,
  GiB: 2 ** 30,
  TiB: 2 ** 40,
} as const;

/** `512`, `64KiB`, `4MiB`, `50GiB`, `1.5GB` → bytes. */
export function parseSizeBytes(input: string | number): number {
  if (typeof input === 'number') {
    if (Number.isSafeInteger(input) && input >= 0) return input;
  } else {
    const match = SIZE.exec(input.trim());
    if (match) return Math.floor(Number(match[1]) * SIZE_BYTES[(match[2] ?? 'B') as keyof typeof SIZE_BYTES]);
  }
  throw new Error(`expected a size such as 512, 64KiB, 4MiB or 50GiB, got ${JSON.stringify(input)}`);
}

/** Milliseconds → the way a config file spells them, in the largest unit that is exact: `1h`, `90m`, `1500ms`. */
export function formatDurationMs(ms: number): string {
  if (ms === 0) return '0';
  for (const unit of ['d', 'h', 'm', 's'] as const) {
    if (ms % DURATION_MS[unit] === 0) return `${ms / DURATION_MS[unit]}${unit}`;
  }
  return `${ms}ms`;
}

/** Bytes → the shortest exact config spelling: `4MiB`, `50GB`, `1023`. Parses back to the same number. */
export function formatSizeBytes(n: number): string {
  let best = String(n);
  for (const unit of ['TiB', 'GiB', 'MiB', 'KiB', 'TB', 'GB', 'MB', 'KB'] as const) {
    const spelt = `${n / SIZE_BYTES[unit]}${unit}`;
    if (n > 0 && n % SIZE_BYTES[unit] === 0 && spelt.length < best.length) best = spelt;
  }
  return best;
}

/** `host:port`, `:port` or `[::1]:port` → its parts; port 0 asks the OS for a free one. */
export function parseListenAddress(input: string): { host: string; port: number } {
  const match = /^(\[[0-9a-fA-F:.]+\]|[^:[\]]*):(\d{1,5})$/.exec(input.trim());
  const port = match ? Number(match[2]) : NaN;
  if (!match || port > 65535) {
    throw new Error(`expected host:port such as 127.0.0.1:5000 or 0.0.0.0:5000, got ${JSON.stringify(input)}`);
  }
  const host = (match[1] as string).replace(/^\[|\]$/g, '');
  return { host: host === '' ? '0.0.0.0' : host, port };
}

/** Bytes for people: `512 B`, `4.0 MiB`, `1.5 GiB`. */
export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = n;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value.toFixed(unit === 0 ? 0 : 1)} ${units[unit]}`;
}

/** How long ago `at` was, for people: `45 s ago`, `12 min ago`, `5 h ago`, `3 d ago`; `never` without one. */
export function formatAgo(at: number | undefined | null, now: number): string {
  if (at === undefined || at === null) return 'never';
  const seconds = Math.max(0, Math.round((now - at) / 1000));
  if (seconds < 120) return `${seconds} s ago`;
  if (seconds < 7200) return `${Math.round(seconds / 60)} min ago`;
  if (seconds < 48 * 3600) return `${Math.round(seconds / 3600)} h ago`;
  return `${Math.round(seconds / 86_400)} d ago`;
}

/** `10.0.0.0/8`, `fd00::/8`, `192.168.1.7` (one address) → its parts, or undefined when it is not one. */
export function parseCidr(input: string): { address: string; prefix: number; family: 'ipv4' | 'ipv6' } | undefined {
  const [address = '', prefixText, ...rest] = input.trim().split('/');
  const version = isIP(address);
  if (version === 0 || rest.length > 0) return undefined;
  const max = version === 4 ? 32 : 128;
  const prefix = prefixText === undefined ? max : /^\d{1,3}$/.test(prefixText) ? Number(prefixText) : NaN;
  if (!(prefix >= 0 && prefix <= max)) return undefined;
  return { address, prefix, family: version === 4 ? 'ipv4' : 'ipv6' };
}
