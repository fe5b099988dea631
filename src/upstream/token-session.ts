import { LRUCache } from 'lru-cache';
import type { Dispatcher } from 'undici';
import { basicAuthorization, type Credentials } from '../config/credentials.js';
import { parseChallenges, TokenCache, tokenFromResponse } from './token-auth.js';
import { UpstreamError } from './upstream-error.js';

/** A credential the upstream just refused is not sent again for this long: repeats are answered here, not relayed (lockouts). */
const REFUSED_CREDENTIALS_MS = 5_000;

/** How one request authenticates right now: with a Bearer token, with Basic credentials, or not at all. */
export interface AuthState {
  readonly token: string | undefined;
  readonly sendBasic: boolean;
  /** A request answers one challenge; a second 401 is the upstream's verdict, for the caller to report. */
  readonly hasAnsweredChallenge: boolean;
}

/**
 * The authentication one upstream client holds across its requests: tokens per scope and
 * credential identity, concurrent token fetches shared, whether the upstream takes Basic, and
 * which credentials it refused moments ago.
 */
export interface TokenSession {
  /** Whether these credentials were refused moments ago (the request is then answered without asking). */
  isRefusedRecently(credentials: Credentials | undefined): boolean;
  /** The state a new request for `scope` starts in: a cached token, or Basic once the upstream asked for it. */
  begin(scope: string, credentials: Credentials | undefined): AuthState;
  /** The `Authorization` value for a request to the upstream's own origin, if any. */
  authorization(state: AuthState, credentials: Credentials | undefined): string | undefined;
  /**
   * Answers the first 401 of a request from its `WWW-Authenticate`: the state to retry with.
   * @throws UpstreamError 'auth' when the challenge cannot be answered, or the token endpoint refuses.
   */
  answer(wwwAuthenticate: string | undefined, scope: string, credentials: Credentials | undefined, state: AuthState): Promise<AuthState>;
}

export interface TokenSessionOptions {
  readonly host: string;
  /** The upstream's origin: relative realms resolve against it. */
  readonly base: URL;
  /** The deadline of a shared token fetch (it outlives the abort of the request that started it). */
  readonly deadlineMs: number;
}

export interface TokenSessionDeps {
  readonly now: () => number;
  /** Sends the token request through the client's pool, breaker and metrics. */
  readonly fetch: (url: URL, headers: Record<string, string>, signal: AbortSignal) => Promise<Dispatcher.ResponseData>;
  /** Resolves the realm, refusing what is not http(s). */
  readonly followable: (location: string, from: URL) => URL;
}

/** Tokens are cached per scope and credential identity: one client's token never serves another's request. */
function tokenKey(scope: string, credentials: Credentials | undefined): string {
  return `${scope}|${credentials?.id ?? 'anonymous'}`;
}

export function createTokenSession(options: TokenSessionOptions, deps: TokenSessionDeps): TokenSession {
  const { host, base } = options;
  const tokens = new TokenCache(deps.now);
  const refusedCredentials = new LRUCache<string, number>({ max: 10_000 });
  /** Learned from a Basic challenge: this upstream takes credentials directly, not through a token realm. */
  let isBasicUpstream = false;

  const refuse = (credentials: Credentials) => refusedCredentials.set(credentials.id, deps.now() + REFUSED_CREDENTIALS_MS);

  async function fetchToken(params: Readonly<Record<string, string>>, scope: string, credentials: Credentials | undefined): Promise<string> {
    const realm = params['realm'];
    if (!realm) throw new UpstreamError('auth', host, `upstream ${host} sent a Bearer challenge without a realm`);
    // The realm is the upstream's word: it is reached only over http(s) and through the network policy.
    const url = deps.followable(realm, base);
    if (params['service']) url.searchParams.set('service', params['service']);
    url.searchParams.set('scope', params['scope'] ?? scope);
    const headers: Record<string, string> = { accept: 'application/json' };
    if (credentials) headers['authorization'] = basicAuthorization(credentials);
    const response = await deps.fetch(url, headers, AbortSignal.timeout(options.deadlineMs));
    if (response.statusCode !== 200) {
      await response.body.dump();
      if (credentials && (response.statusCode === 401 || response.statusCode === 403)) refuse(credentials);
      throw new UpstreamError('auth', host, `token endpoint of ${host} refused ${credentials ? 'the credentials' : 'an anonymous token'} (${response.statusCode})`, { status: response.statusCode });
    }
    const parsed = tokenFromResponse(await response.body.json().catch(() => undefined));
    if (!parsed) throw new UpstreamError('auth', host, `token endpoint of ${host} sent no token`);
    tokens.set(tokenKey(scope, credentials), parsed.token, parsed.expiresIn);
    return parsed.token;
  }

  /** Concurrent token fetches for one scope and credential identity share one request, under the deadline alone (not one caller's abort). */
  const tokenFlights = new Map<string, Promise<string>>();
  function sharedToken(params: Readonly<Record<string, string>>, scope: string, credentials: Credentials | undefined, refused: string | undefined): Promise<string> {
    const key = tokenKey(scope, credentials);
    // Another request's fetch may have ended since this one was sent: its token is as good (unless it is the one refused).
    const cached = tokens.get(key);
    if (cached !== undefined && cached !== refused) return Promise.resolve(cached);
    let flight = tokenFlights.get(key);
    if (!flight) {
      flight = fetchToken(params, scope, credentials).finally(() => tokenFlights.delete(key));
      tokenFlights.set(key, flight);
    }
    return flight;
  }

  return {
    isRefusedRecently(credentials) {
      const until = credentials ? refusedCredentials.get(credentials.id) : undefined;
      return until !== undefined && until > deps.now();
    },
    begin: (scope, credentials) => ({ token: tokens.get(tokenKey(scope, credentials)), sendBasic: isBasicUpstream && credentials !== undefined, hasAnsweredChallenge: false }),
    authorization(state, credentials) {
      if (state.token) return `Bearer ${state.token}`;
      return state.sendBasic && credentials ? basicAuthorization(credentials) : undefined;
    },
    async answer(wwwAuthenticate, scope, credentials, state) {
      const challenges = parseChallenges(wwwAuthenticate);
      const bearer = challenges.find((c) => c.scheme === 'bearer');
      if (bearer) return { ...state, token: await sharedToken(bearer.params, scope, credentials, state.token), hasAnsweredChallenge: true };
      if (challenges.some((c) => c.scheme === 'basic') && credentials && !state.sendBasic) {
        isBasicUpstream = true;
        return { ...state, sendBasic: true, hasAnsweredChallenge: true };
      }
      if (credentials && state.sendBasic) refuse(credentials);
      throw new UpstreamError('auth', host, `upstream ${host} ${credentials ? 'refused the credentials' : 'requires credentials'}`, { status: 401 });
    },
  };
}
