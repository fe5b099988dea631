/**
 * Parsing of `WWW-Authenticate` challenges (RFC 9110 §11.6.1) and the token cache for the
 * Bearer flow distribution's token auth, Docker Hub and ghcr.io use.
 */
import { LRUCache } from 'lru-cache';

/** One challenge: its scheme (lower-cased) and parameters (keys lower-cased). */
export interface AuthChallenge {
  readonly scheme: string;
  readonly params: Readonly<Record<string, string>>;
}

const PARAM = /([a-zA-Z0-9_-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,"]*))/y;

/** Parses a `WWW-Authenticate` value; unknown syntax yields fewer challenges, never an exception. */
export function parseChallenges(header: string | undefined): AuthChallenge[] {
  const challenges: AuthChallenge[] = [];
  if (!header) return challenges;
  let rest = header.trim();
  while (rest.length > 0) {
    const scheme = /^([a-zA-Z][a-zA-Z0-9._-]*)\s*/.exec(rest);
    if (!scheme) break;
    rest = rest.slice(scheme[0].length);
    const params: Record<string, string> = {};
    for (;;) {
      PARAM.lastIndex = 0;
      const match = PARAM.exec(rest);
      if (!match) break;
      params[(match[1] as string).toLowerCase()] = match[2] !== undefined ? match[2].replace(/\\(.)/g, '$1') : (match[3] ?? '');
      rest = rest.slice(match[0].length).replace(/^\s*,\s*/, '');
    }
    challenges.push({ scheme: (scheme[1] as string).toLowerCase(), params });
    rest = rest.replace(/^\s*,\s*/, '');
  }
  return challenges;
}

interface CachedToken {
  readonly token: string;
  readonly expiresAt: number;
}

/** Tokens by key (scope plus, later, credential identity) until shortly before they expire. */
export class TokenCache {
  readonly #tokens: LRUCache<string, CachedToken>;
  readonly #now: () => number;

  constructor(now: () => number, maxEntries = 10_000) {
    this.#now = now;
    this.#tokens = new LRUCache({ max: maxEntries });
  }

  get(key: string): string | undefined {
    const cached = this.#tokens.get(key);
    if (!cached) return undefined;
    if (cached.expiresAt <= this.#now()) {
      this.#tokens.delete(key);
      return undefined;
    }
    return cached.token;
  }

  /** Keeps a token for its lifetime less a safety margin; the spec's default lifetime is 60 s. */
  set(key: string, token: string, expiresInSeconds: number | undefined): void {
    const lifetimeMs = Math.max(0, (expiresInSeconds ?? 60) * 1000 - 10_000);
    if (lifetimeMs === 0) return;
    this.#tokens.set(key, { token, expiresAt: this.#now() + lifetimeMs });
  }
}

/** The token in a token endpoint's JSON answer (`token`, or OAuth2's `access_token`). */
export function tokenFromResponse(body: unknown): { token: string; expiresIn: number | undefined } | undefined {
  if (typeof body !== 'object' || body === null) return undefined;
  const { token, access_token: accessToken, expires_in: expiresIn } = body as Record<string, unknown>;
  const value = typeof token === 'string' && token ? token : typeof accessToken === 'string' ? accessToken : undefined;
  if (!value) return undefined;
  return { token: value, expiresIn: typeof expiresIn === 'number' ? expiresIn : undefined };
}
