import { createHmac, timingSafeEqual } from 'node:crypto';

/** The header a member signs its peer requests with. */
export const PEER_SIGNATURE_HEADER = 'x-pullthrough-cluster';
/** A signature this many seconds off the receiver's clock is refused (replay window, clock skew). */
const MAX_SKEW_SECONDS = 60;

function mac(secret: string, seconds: number, method: string, pathAndQuery: string): string {
  return createHmac('sha256', secret).update(`${seconds}\n${method.toUpperCase()}\n${pathAndQuery}`).digest('hex');
}

/**
 * `t=<unix seconds>,sig=<HMAC-SHA256>` over the time, method and path with query: the secret
 * itself never goes over the wire, and a captured request is worth at most a minute.
 */
export function signPeerRequest(secret: string, method: string, pathAndQuery: string, nowMs: number): string {
  const seconds = Math.floor(nowMs / 1000);
  return `t=${seconds},sig=${mac(secret, seconds, method, pathAndQuery)}`;
}

/** Whether `header` signs exactly this request with `secret`, recently. */
export function isSignedPeerRequest(secret: string, header: string | undefined, method: string, pathAndQuery: string, nowMs: number): boolean {
  const match = header === undefined ? null : /^t=(\d{1,12}),sig=([0-9a-f]{64})$/.exec(header);
  if (!match) return false;
  const seconds = Number(match[1]);
  if (Math.abs(nowMs / 1000 - seconds) > MAX_SKEW_SECONDS) return false;
  const expected = Buffer.from(mac(secret, seconds, method, pathAndQuery), 'hex');
  return timingSafeEqual(expected, Buffer.from(match[2] ?? '', 'hex'));
}
