import { randomBytes } from 'node:crypto';
import type { Request, Response } from 'express';
import { parseBasicAuthorization, type Credentials } from '../config/credentials.js';
import { OciError } from '../oci/errors.js';
import { isWellFormedHost } from '../oci/reference.js';
import { createMemoryLru } from './memory-lru.js';
import { labels } from './request-context.js';
import type { TokenRateLimiter } from './token-rate-limit.js';

/**
 * pullthrough's own token endpoint. Clients that probe `GET /v2/` first (docker, podman, skopeo)
 * only send credentials after a challenge there; a Bearer challenge is the one every client can
 * answer with or without credentials (a Basic one makes docker fail when it has none). Whatever
 * a client sends to the token endpoint (Basic credentials, or nothing) is kept behind an opaque
 * token, and used upstream when the client presents that token. Nothing is checked here: the
 * upstream decides, per repository, in the cache layer.
 */
export interface AuthSessions {
  /** @throws OciError SIZE_INVALID (400) for credentials over the limit, which are not kept. */
  issue(credentials: Credentials | undefined): { token: string; expiresInSeconds: number };
  /** The session of a token we issued, or undefined for an unknown, expired or evicted one. */
  resolve(token: string): { credentials: Credentials | undefined } | undefined;
  /** Bytes the sessions are counted at now (never more than `maxBytes`). */
  readonly sizeBytes: number;
}

export interface Session {
  readonly credentials: Credentials | undefined;
  readonly expiresAt: number;
}

const SERVICE = 'pullthrough';
/** What one session holds besides its credentials' strings: the token, the id hash, two map entries. */
const SESSION_OVERHEAD_BYTES = 320;
/** Username plus password, in bytes: registry credentials are short; a longer pair is an attack on memory. */
export const MAX_CREDENTIAL_BYTES = 4096;

/** The bytes a session is counted at: strings at two bytes a character, which is what V8 may use. */
function sessionBytes(session: Session): number {
  const credentials = session.credentials;
  return SESSION_OVERHEAD_BYTES + (credentials ? 2 * (credentials.username.length + credentials.password.length) : 0);
}

/**
 * Tokens to sessions in `maxBytes`, in two LRU segments: a new session waits in the smaller
 * "probation" one (a quarter) and moves to the "protected" one when its token is first used. A
 * flood of issued tokens that are never used only churns probation, so it cannot evict the
 * session of a client that keeps using its token; used sessions make room for each other, least
 * recently used first.
 */
export function createAuthSessions(
  options: { ttlMs: number; maxBytes: number },
  deps: { now: () => number },
): AuthSessions {
  const probationBytes = Math.floor(options.maxBytes / 4);
  const probation = createMemoryLru<Session>({ maxBytes: probationBytes, sizeOf: sessionBytes });
  const used = createMemoryLru<Session>({ maxBytes: options.maxBytes - probationBytes, sizeOf: sessionBytes });
  return {
    issue(credentials) {
      if (credentials && Buffer.byteLength(credentials.username) + Buffer.byteLength(credentials.password) > MAX_CREDENTIAL_BYTES) {
        throw new OciError('SIZE_INVALID', `credentials longer than ${MAX_CREDENTIAL_BYTES} bytes (username and password together) are refused`);
      }
      const token = randomBytes(32).toString('base64url');
      probation.set(token, { credentials, expiresAt: deps.now() + options.ttlMs });
      return { token, expiresInSeconds: Math.floor(options.ttlMs / 1000) };
    },
    resolve(token) {
      let session = used.get(token);
      if (!session) {
        session = probation.get(token);
        if (!session) return undefined;
        probation.delete(token);
        used.set(token, session);
      }
      if (session.expiresAt <= deps.now()) {
        used.delete(token);
        return undefined;
      }
      return { credentials: session.credentials };
    },
    get sizeBytes() {
      return probation.sizeBytes + used.sizeBytes;
    },
  };
}

/** Who is asking: credentials from Basic, or from one of our tokens. `isStale` marks a Bearer token we do not know (expired, or from before a restart). */
export function requesterOf(req: Request, sessions: AuthSessions): { credentials: Credentials | undefined; isPresent: boolean; isStale: boolean } {
  const header = req.headers.authorization;
  if (!header) return { credentials: undefined, isPresent: false, isStale: false };
  const bearer = /^Bearer\s+(\S+)\s*$/i.exec(header);
  if (bearer) {
    const session = sessions.resolve(bearer[1] as string);
    return { credentials: session?.credentials, isPresent: session !== undefined, isStale: session === undefined };
  }
  const credentials = parseBasicAuthorization(header);
  return { credentials, isPresent: true, isStale: false };
}

/** Repository names as the spec allows them (no quotes, spaces or commas to break out of the header). */
const SCOPE_NAME = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$/;

/**
 * The `WWW-Authenticate` value for a 401: our token endpoint, at `publicUrl` when configured,
 * else on the host the client used when that is a well-formed host, else on the address the
 * request arrived at. Clients send credentials to the realm, so a hostile Host must not pick it.
 */
export function challengeFor(req: Request, publicUrl?: string): string {
  const name = /^\/v2\/(.+)\/(?:manifests|blobs|tags)\//.exec(req.path)?.[1];
  const scope = name && SCOPE_NAME.test(name) ? `,scope="repository:${name}:pull"` : '';
  const host = req.headers.host;
  const local = req.socket.localAddress ?? '127.0.0.1';
  const origin = publicUrl ?? `${req.protocol}://${host && isWellFormedHost(host) ? host : `${local.includes(':') ? `[${local}]` : local}:${req.socket.localPort ?? ''}`}`;
  return `Bearer realm="${origin}/_pullthrough/token",service="${SERVICE}"${scope}`;
}

/**
 * `GET /_pullthrough/token`: answers every client with a token, carrying its credentials if it
 * sent any. Each client address may take `limiter`'s rate of tokens; past it, 429 TOOMANYREQUESTS
 * with `Retry-After` (clients fetch one token per pull, so only a flood meets the limit).
 */
export function createTokenHandler(sessions: AuthSessions, limiter: TokenRateLimiter, now: () => number) {
  return (req: Request, res: Response): void => {
    labels(res).kind = 'token';
    const retryAfterSeconds = limiter.take(req.socket.remoteAddress ?? '');
    if (retryAfterSeconds !== undefined) {
      throw new OciError('TOOMANYREQUESTS', 'too many tokens asked from this address: retry later', { headers: { 'retry-after': String(retryAfterSeconds) } });
    }
    const issued = sessions.issue(parseBasicAuthorization(req.headers.authorization));
    res.setHeader('cache-control', 'no-store');
    res.json({ token: issued.token, access_token: issued.token, expires_in: issued.expiresInSeconds, issued_at: new Date(now()).toISOString() });
  };
}
