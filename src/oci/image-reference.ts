import { parseDigest, type Digest } from './digest.js';
import { OciError } from './errors.js';
import { isDockerHubHost, isRegistryHost, parseManifestReference, parseRepositoryName } from './reference.js';

/** A full image reference as people write it: `nginx`, `ghcr.io/acme/tool:1.0`, `localhost:5001/app@sha256:…`. */
export interface ImageReference {
  /** Registry host as written, with Docker Hub's aliases folded into `docker.io`. */
  readonly registry: string;
  readonly repository: string;
  readonly tag: string | undefined;
  readonly digest: Digest | undefined;
}

/**
 * Parses an image reference the way docker and containerd do: no registry host means
 * `docker.io`, a single Docker Hub component gets `library/`, no tag or digest means `latest`.
 * @throws OciError NAME_INVALID, DIGEST_INVALID or MANIFEST_INVALID naming the bad part.
 */
export function parseImageReference(input: string): ImageReference {
  let rest = input.trim();
  let digest: Digest | undefined;
  const at = rest.indexOf('@');
  if (at !== -1) {
    digest = parseDigest(rest.slice(at + 1));
    rest = rest.slice(0, at);
  }
  let tag: string | undefined;
  const colon = rest.lastIndexOf(':');
  if (colon > rest.lastIndexOf('/')) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    const parsed = parseManifestReference(tag);
    if (parsed.kind !== 'tag') throw new OciError('MANIFEST_INVALID', `invalid tag in ${JSON.stringify(input)}`);
  }
  const slash = rest.indexOf('/');
  let registry = 'docker.io';
  if (slash !== -1 && isRegistryHost(rest.slice(0, slash))) {
    registry = rest.slice(0, slash).toLowerCase();
    rest = rest.slice(slash + 1);
  }
  if (isDockerHubHost(registry)) {
    registry = 'docker.io';
    if (!rest.includes('/')) rest = `library/${rest}`;
  }
  const repository = parseRepositoryName(rest);
  return { registry, repository, tag: tag ?? (digest ? undefined : 'latest'), digest };
}

/** The canonical string: `registry/repository:tag`, `…@digest` or both. */
export function formatImageReference(ref: ImageReference): string {
  return `${ref.registry}/${ref.repository}${ref.tag ? `:${ref.tag}` : ''}${ref.digest ? `@${ref.digest.value}` : ''}`;
}
