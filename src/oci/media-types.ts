/** Manifest media types this registry understands (image-spec v1.1, docker image manifest v2.2). */
export const MEDIA_TYPES = {
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
} as const;

/** Everything we ask an upstream for when filling a tag, best first. */
export const MANIFEST_MEDIA_TYPES: readonly string[] = [
  MEDIA_TYPES.ociIndex,
  MEDIA_TYPES.dockerManifestList,
  MEDIA_TYPES.ociManifest,
  MEDIA_TYPES.dockerManifest,
];

const INDEX_TYPES = new Set<string>([MEDIA_TYPES.ociIndex, MEDIA_TYPES.dockerManifestList]);

/** True for the image manifest types (OCI image manifest, docker image manifest v2.2). */
export function isImageManifestMediaType(mediaType: string): boolean {
  return mediaType === MEDIA_TYPES.ociManifest || mediaType === MEDIA_TYPES.dockerManifest;
}

/** True for media types whose content lists other manifests (an OCI index or a docker manifest list). */
export function isIndexMediaType(mediaType: string): boolean {
  return INDEX_TYPES.has(mediaType);
}

/**
 * Splits `Accept` header values into media ranges without parameters. Clients send either one
 * comma-separated list (containerd) or one header line per type (containers/image, dockerd).
 */
export function parseAccept(values: string | readonly string[] | undefined): string[] {
  if (values === undefined) return [];
  const lines = typeof values === 'string' ? [values] : values;
  const types: string[] = [];
  for (const line of lines) {
    for (const part of line.split(',')) {
      const type = part.split(';')[0]?.trim().toLowerCase();
      if (type) types.push(type);
    }
  }
  return types;
}

/**
 * Whether a client that sent `accepted` can take `mediaType`. No Accept at all, `*\/*` or a
 * matching `type/*` accepts anything, as in RFC 9110 §12.5.1.
 */
export function accepts(accepted: readonly string[], mediaType: string): boolean {
  if (accepted.length === 0) return true;
  const type = mediaType.toLowerCase();
  const major = type.split('/')[0];
  return accepted.some((range) => range === '*/*' || range === type || range === `${major}/*`);
}
