import { randomBytes } from 'node:crypto';
import type { Request, Response } from 'express';
import { parseBasicAuthorization, type Credentials } from '../config/credentials.js';
import { labels } from './request-context.js';

/**
 * pullthrough's own token endpoint. Clients that probe `GET /v2/` first (docker, podman, skopeo)
 * only send credentials after a challenge there; a Bearer challenge is the one every client can
 * answer with or without credentials (a Basic one makes docker fail when it has none). Whatever
 * a client sends to the token endpoint (Basic credentials, or nothing) is kept behind an opaque
 * token, and used upstream when the client presents that token. Nothing is checked here: the
 * upstream decides, per repository, in the cache layer.
 */
export interface AuthSessions {
  issue(credentials: Credentials | undefined): { token: string; expiresInSeconds: number };
  /** The session of a token we issued, or undefined for an unknown or expired one. */
  resolve(token: string): { credentials: Credentials | undefined } | undefined;
}

const SERVICE = 'pullthrough';

export function createAuthSessions(options: { ttlMs: number; maxSessions: number }, deps: { now: () => number }): AuthSessions {
  const sessions = new Map<string, { credentials: Credentials | undefined; expiresAt: number }>();
  return {
    issue(credentials) {
      if (sessions.size >= options.maxSessions) {
        const oldest = sessions.keys().next().value;
        if (oldest !== undefined) sessions.delete(oldest);
      }
      const token = randomBytes(32).toString('base64url');
      sessions.set(token, { credentials, expiresAt: deps.now() + options.ttlMs });
      return { token, expiresInSeconds: Math.floor(options.ttlMs / 1000) };
    },
    resolve(token) {
      const session = sessions.get(token);
      if (!session) return undefined;
      if (session.expiresAt <= deps.now()) {
        sessions.delete(token);
        return undefined;
      }
      return { credentials: session.credentials };
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

/** `host[:port]`, `[v6]:port`: what a Host header may be for it to go into a realm. */
const HOST_HEADER = /^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*|\[[0-9a-fA-F:.]+\])(?::\d{1,5})?$/;
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
  const origin = publicUrl ?? `${req.protocol}://${host && HOST_HEADER.test(host) ? host : `${local.includes(':') ? `[${local}]` : local}:${req.socket.localPort ?? ''}`}`;
  return `Bearer realm="${origin}/_pullthrough/token",service="${SERVICE}"${scope}`;
}

/** `GET /_pullthrough/token`: answers every client with a token, carrying its credentials if it sent any. */
export function createTokenHandler(sessions: AuthSessions, now: () => number) {
  return (req: Request, res: Response): void => {
    labels(res).kind = 'token';
    const issued = sessions.issue(parseBasicAuthorization(req.headers.authorization));
    res.setHeader('cache-control', 'no-store');
    res.json({ token: issued.token, access_token: issued.token, expires_in: issued.expiresInSeconds, issued_at: new Date(now()).toISOString() });
  };
}
