import { digestOf, type Digest } from './digest.js';
import { isImageManifestMediaType, isIndexMediaType } from './media-types.js';

/** A content descriptor's parts we rely on (image-spec "Descriptors"). */
export interface Descriptor {
  readonly mediaType: string;
  readonly digest: string;
  readonly size: number;
  /** On an index's entries: which platform the manifest is for. */
  readonly platform?: { readonly os?: string; readonly architecture?: string; readonly variant?: string } | undefined;
}

/** What a manifest points at: child manifests (for an index) and blobs (config and layers). */
export interface ManifestReferences {
  readonly manifests: readonly Descriptor[];
  readonly blobs: readonly Descriptor[];
}

function asDescriptor(value: unknown): Descriptor | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const { mediaType, digest, size, platform } = value as Record<string, unknown>;
  if (typeof digest !== 'string' || typeof size !== 'number') return undefined;
  const descriptor = { mediaType: typeof mediaType === 'string' ? mediaType : '', digest, size };
  return typeof platform === 'object' && platform !== null ? { ...descriptor, platform: platform as Descriptor['platform'] } : descriptor;
}

function descriptors(list: unknown): Descriptor[] {
  if (!Array.isArray(list)) return [];
  return list.map(asDescriptor).filter((d): d is Descriptor => d !== undefined);
}

/**
 * Reads the descriptors a manifest refers to. Never throws: content we cannot parse refers to
 * nothing we know of (it is still served byte for byte).
 */
export function manifestReferences(bytes: Uint8Array, mediaType: string): ManifestReferences {
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch {
    return { manifests: [], blobs: [] };
  }
  if (typeof parsed !== 'object' || parsed === null) return { manifests: [], blobs: [] };
  const body = parsed as Record<string, unknown>;
  if (isIndexMediaType(mediaType) || (body['manifests'] !== undefined && body['layers'] === undefined)) {
    return { manifests: descriptors(body['manifests']), blobs: [] };
  }
  const config = asDescriptor(body['config']);
  const blobs = descriptors(body['layers']);
  return { manifests: [], blobs: config ? [config, ...blobs] : blobs };
}

/**
 * The media type a manifest declares in its own `mediaType` field, used when an upstream sends
 * no usable Content-Type (image-spec requires the field for indexes and manifests alike).
 */
export function declaredMediaType(bytes: Uint8Array): string | undefined {
  try {
    const parsed: unknown = JSON.parse(Buffer.from(bytes).toString('utf8'));
    if (typeof parsed === 'object' && parsed !== null) {
      const mediaType = (parsed as Record<string, unknown>)['mediaType'];
      if (typeof mediaType === 'string') return mediaType;
    }
  } catch {
    // Not JSON: the caller keeps whatever media type the upstream sent.
  }
  return undefined;
}

/** Docker's schema 1, still served for very old images; accepted as is, never asked for. */
const SCHEMA1_TYPES = new Set(['application/vnd.docker.distribution.manifest.v1+json', 'application/vnd.docker.distribution.manifest.v1+prettyjws']);

/**
 * Why `bytes` is not a manifest of `mediaType`, or undefined when it is one: a manifest media
 * type, a JSON object of that shape, and (where the body names its media type) the same type.
 * An upstream's 200 alone does not make a body a manifest (a login page, a redirect's target).
 */
export function manifestProblem(bytes: Uint8Array, mediaType: string): string | undefined {
  const isIndex = isIndexMediaType(mediaType);
  if (!isIndex && !isImageManifestMediaType(mediaType) && !SCHEMA1_TYPES.has(mediaType)) return 'its media type is not a manifest type';
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch {
    return 'the body is not JSON';
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return 'the body is not a JSON object';
  const body = parsed as Record<string, unknown>;
  if (SCHEMA1_TYPES.has(mediaType)) return body['schemaVersion'] === 1 && Array.isArray(body['fsLayers']) ? undefined : 'not a schema 1 manifest';
  if (body['schemaVersion'] !== 2) return 'schemaVersion is not 2';
  if (body['mediaType'] !== undefined && body['mediaType'] !== mediaType) return 'the body declares another media type';
  if (isIndex) return Array.isArray(body['manifests']) ? undefined : 'an index without a manifests list';
  return typeof body['config'] === 'object' && body['config'] !== null && Array.isArray(body['layers']) ? undefined : 'a manifest without config and layers';
}

/**
 * Checks a manifest body against the digest it must have: `expected` when it was asked for by
 * digest (or an index names it), else the registry's `Docker-Content-Digest` when that is in the
 * same algorithm (sha256, when nothing is expected). Hashes the body once.
 * @returns the body's digest and, when it does not match, the digest it was claimed to have.
 */
export function checkManifestDigest(bytes: Uint8Array, expected: Digest | undefined, headerDigest: string | undefined): { digest: string; mismatch: string | undefined } {
  const algorithm = expected?.algorithm ?? 'sha256';
  const digest = digestOf(bytes, algorithm);
  const claimed = expected?.value ?? (headerDigest?.startsWith(`${algorithm}:`) ? headerDigest : undefined);
  return { digest, mismatch: claimed !== undefined && claimed !== digest ? claimed : undefined };
}
