import { looksLikeDigest, parseDigest, type Digest } from './digest.js';
import { OciError } from './errors.js';

/** distribution-spec "Pulling manifests": `<name>` path components. */
const NAME_COMPONENT = /^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*$/;
/** distribution-spec: a tag is at most 128 characters of this grammar. */
const TAG = /^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$/;
/** distribution's reference package caps a name at 255 characters including the domain. */
const MAX_NAME_LENGTH = 255;

/**
 * Validates a repository name (without any registry host in front).
 * @throws OciError NAME_INVALID naming what is wrong.
 */
export function parseRepositoryName(name: string): string {
  if (name.length === 0) throw new OciError('NAME_INVALID', 'repository name is empty');
  if (name.length > MAX_NAME_LENGTH) {
    throw new OciError('NAME_INVALID', `repository name is longer than ${MAX_NAME_LENGTH} characters`);
  }
  for (const component of name.split('/')) {
    if (!NAME_COMPONENT.test(component)) {
      throw new OciError('NAME_INVALID', `invalid repository name component ${JSON.stringify(component)}`, {
        detail: { name },
      });
    }
  }
  return name;
}

/** A manifest reference: either a tag or a validated digest. */
export type ManifestReference = { kind: 'tag'; tag: string } | { kind: 'digest'; digest: Digest };

/**
 * Parses the `<reference>` of `/v2/<name>/manifests/<reference>`.
 * @throws OciError DIGEST_INVALID for a bad digest; MANIFEST_INVALID (400) for a string that is
 *   neither a digest nor a tag (the spec has no TAG_INVALID code).
 */
export function parseManifestReference(reference: string): ManifestReference {
  if (looksLikeDigest(reference)) return { kind: 'digest', digest: parseDigest(reference) };
  if (!TAG.test(reference)) {
    throw new OciError('MANIFEST_INVALID', `invalid tag ${JSON.stringify(reference.slice(0, 200))}`);
  }
  return { kind: 'tag', tag: reference };
}

/** The host names Docker Hub goes by in image references and configs; `docker.io` is the canonical one. */
export const DOCKER_HUB_HOSTS: readonly string[] = ['docker.io', 'index.docker.io', 'registry-1.docker.io'];

/** Whether `host` (any case) is one of Docker Hub's names. */
export function isDockerHubHost(host: string): boolean {
  return DOCKER_HUB_HOSTS.includes(host.toLowerCase());
}

/**
 * True when a path's first component names a registry host rather than a repository:
 * it has a `.` or a `:`, or is `localhost` (the rule docker's reference parser uses).
 */
export function isRegistryHost(component: string): boolean {
  return component.includes('.') || component.includes(':') || component === 'localhost';
}

const REGISTRY_HOST = /^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*(?::\d{1,5})?$/;

/** A well-formed `host[:port]`: nothing that could add a path, userinfo or scheme to a URL built from it, and a port a URL can hold. */
export function isValidRegistryHost(host: string): boolean {
  if (host.length > 255 || !REGISTRY_HOST.test(host)) return false;
  const colon = host.lastIndexOf(':');
  return colon === -1 || Number(host.slice(colon + 1)) <= 65_535;
}

/** The repository a request names, as the client sent it, before routing. */
export interface RepositoryRequest {
  /** The `<name>` path part; may start with a registry host (path-prefix mirrors). */
  readonly name: string;
  /** containerd's `?ns=` mirror parameter: the registry host of the image reference. */
  readonly namespace?: string | undefined;
}

/** An IPv6 literal in brackets, with an optional port: a host URL syntax can hold (RFC 3986 §3.2.2). */
const IPV6_HOST = /^\[[0-9a-fA-F:.]{2,45}\](?::(\d{1,5}))?$/;

/** A host a URL can hold: a registry host, or a bracketed IPv6 literal (which the router may still refuse). */
export function isWellFormedHost(host: string): boolean {
  if (isValidRegistryHost(host)) return true;
  const ipv6 = IPV6_HOST.exec(host);
  return ipv6 !== null && Number(ipv6[1] ?? 0) <= 65_535;
}

/**
 * Checks the registry host a request names, in a `<host>/` name prefix or in `ns=`, before it is
 * routed: a malformed one (a port past 65535, a path in `ns=`) is the client's mistake, answered
 * 400, and never reaches URL building (where it would throw). Well-formed hosts go on to the
 * router, which decides whether they are served (a catch-all refuses private addresses alike).
 * @throws OciError NAME_INVALID naming the host.
 */
export function checkRepositoryRequest(request: RepositoryRequest): RepositoryRequest {
  const { name, namespace } = request;
  if (namespace !== undefined && namespace !== '' && !isWellFormedHost(namespace)) {
    throw new OciError('NAME_INVALID', `ns=${JSON.stringify(namespace.slice(0, 200))} is not a registry host[:port]`);
  }
  const slash = name.indexOf('/');
  const first = slash === -1 ? '' : name.slice(0, slash);
  if (first !== '' && isRegistryHost(first) && !isWellFormedHost(first)) {
    throw new OciError('NAME_INVALID', `${JSON.stringify(first.slice(0, 200))} is not a registry host[:port]`, { detail: { name: name.slice(0, 300) } });
  }
  return request;
}
