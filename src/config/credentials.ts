import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { DOCKER_HUB_HOSTS, isDockerHubHost } from '../oci/reference.js';

/** A username and password for an upstream, from a client or from the config. Never logged. */
export interface Credentials {
  readonly username: string;
  readonly password: string;
  /** A one-way identity for caches and decisions: sha256 of both, never the secret itself. */
  readonly id: string;
}

export function makeCredentials(username: string, password: string): Credentials {
  const id = createHash('sha256').update(`${username}\0${password}`).digest('hex');
  // The secret stays out of JSON and util.inspect output, so a stray log line cannot carry it.
  const credentials = { username, id } as { username: string; id: string; password: string };
  Object.defineProperty(credentials, 'password', { value: password, enumerable: false });
  return Object.freeze(credentials);
}

/** Reads `Authorization: Basic …`; empty usernames (what containers/image sends when it has none) count as none. */
export function parseBasicAuthorization(header: string | undefined): Credentials | undefined {
  const match = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header ?? '');
  if (!match) return undefined;
  const decoded = Buffer.from(match[1] as string, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon <= 0) return undefined;
  return makeCredentials(decoded.slice(0, colon), decoded.slice(colon + 1));
}

export function basicAuthorization(credentials: Credentials): string {
  return `Basic ${Buffer.from(`${credentials.username}:${credentials.password}`).toString('base64')}`;
}

/** Configured upstream credentials: inline password, a password file, or a docker config.json. */
export interface CredentialSource {
  readonly username?: string | undefined;
  readonly password?: string | undefined;
  readonly passwordFile?: string | undefined;
  readonly dockerConfig?: string | undefined;
}

/**
 * Resolves configured credentials for `host` at start-up.
 * @throws Error naming the file or the missing entry.
 */
export function loadCredentials(source: CredentialSource, host: string): Credentials | undefined {
  if (source.dockerConfig) {
    const config = JSON.parse(readFileSync(source.dockerConfig, 'utf8')) as { auths?: Record<string, { auth?: string; username?: string; password?: string }> };
    // `docker login` writes Docker Hub's entry under its legacy v1 URL.
    const aliases = isDockerHubHost(host) ? [...DOCKER_HUB_HOSTS, 'https://index.docker.io/v1/'] : [host, `https://${host}`];
    const entry = aliases.map((a) => config.auths?.[a]).find((e) => e !== undefined);
    if (!entry) throw new Error(`${source.dockerConfig} has no auths entry for ${host}`);
    if (entry.auth) {
      const decoded = Buffer.from(entry.auth, 'base64').toString('utf8');
      const colon = decoded.indexOf(':');
      if (colon <= 0) throw new Error(`${source.dockerConfig}: the auth of ${host} is not base64 of user:password`);
      return makeCredentials(decoded.slice(0, colon), decoded.slice(colon + 1));
    }
    if (entry.username && entry.password) return makeCredentials(entry.username, entry.password);
    throw new Error(`${source.dockerConfig}: the entry for ${host} has neither auth nor username and password`);
  }
  if (!source.username) return undefined;
  const password = source.passwordFile ? readFileSync(source.passwordFile, 'utf8').replace(/\r?\n$/, '') : source.password;
  if (password === undefined) throw new Error(`credentials for ${host} have a username but no password or passwordFile`);
  return makeCredentials(source.username, password);
}
