import type { Digest } from './digest.js';
import { MEDIA_TYPES } from './media-types.js';

/**
 * A referrer as the referrers API lists it (distribution-spec "Listing Referrers"): the
 * referrer manifest's descriptor with its `artifactType` and its `annotations`.
 */
export interface ReferrerDescriptor {
  readonly mediaType: string;
  readonly digest: string;
  readonly size: number;
  readonly artifactType?: string | undefined;
  readonly annotations?: Readonly<Record<string, string>> | undefined;
}

/** distribution-spec "Referrers Tag Schema": `<alg>-<ref>`, the algorithm cut to 32 and the hex to 64 characters. */
export function fallbackTag(digest: Digest): string {
  return `${digest.algorithm.slice(0, 32)}-${digest.hex.slice(0, 64)}`;
}

/**
 * The tag row under which the cache keeps a referrers answer: no real tag can contain ':', so
 * it never meets one, and tag listings leave it out.
 */
export function referrersTagName(subject: Digest): string {
  return `referrers:${subject.value}`;
}

/** True for a tag row that holds something other than a tag (see {@link referrersTagName}). */
export function isReservedTagName(tag: string): boolean {
  return tag.includes(':');
}

/** On a referrer's entry in a bundle's index.json: `registry/repository@digest` of its subject. */
export const SUBJECT_ANNOTATION = 'io.pullthrough.referrer.subject';

function isStringRecord(value: unknown): value is Record<string, string> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && Object.values(value).every((v) => typeof v === 'string');
}

/**
 * The well-formed descriptors of an index's `manifests`, with only the fields a referrers
 * answer carries; anything else (a wrong type, a missing digest) is left out, never passed on.
 */
export function referrerDescriptors(manifests: readonly unknown[]): ReferrerDescriptor[] {
  const out: ReferrerDescriptor[] = [];
  for (const entry of manifests) {
    if (typeof entry !== 'object' || entry === null) continue;
    const { mediaType, digest, size, artifactType, annotations } = entry as Record<string, unknown>;
    if (typeof mediaType !== 'string' || typeof digest !== 'string' || typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) continue;
    out.push({
      mediaType,
      digest,
      size,
      ...(typeof artifactType === 'string' && { artifactType }),
      ...(isStringRecord(annotations) && { annotations }),
    });
  }
  return out;
}

/** The `manifests` of an image index, or undefined when `bytes` is not one. */
export function indexManifests(bytes: Uint8Array): unknown[] | undefined {
  try {
    const parsed: unknown = JSON.parse(Buffer.from(bytes).toString('utf8'));
    const manifests = typeof parsed === 'object' && parsed !== null ? (parsed as { manifests?: unknown }).manifests : undefined;
    return Array.isArray(manifests) ? manifests : undefined;
  } catch {
    return undefined;
  }
}

/** An image index listing `descriptors`, as the referrers API answers (an empty one means "none"). */
export function referrersIndex(descriptors: readonly ReferrerDescriptor[]): Buffer {
  return Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MEDIA_TYPES.ociIndex, manifests: descriptors }));
}

/**
 * The descriptor the referrers API lists for a referrer manifest: `artifactType` is the
 * manifest's own, else its config's media type (image-spec "Guidelines for artifact usage").
 * Undefined for bytes that are no manifest with a `subject`.
 */
export function describeReferrer(bytes: Uint8Array, mediaType: string, digest: string): { descriptor: ReferrerDescriptor; subject: string } | undefined {
  let parsed: Record<string, unknown>;
  try {
    const value: unknown = JSON.parse(Buffer.from(bytes).toString('utf8'));
    if (typeof value !== 'object' || value === null) return undefined;
    parsed = value as Record<string, unknown>;
  } catch {
    return undefined;
  }
  const subject = (parsed['subject'] as { digest?: unknown } | undefined)?.digest;
  if (typeof subject !== 'string') return undefined;
  const own = parsed['artifactType'];
  const configType = (parsed['config'] as { mediaType?: unknown } | undefined)?.mediaType;
  const artifactType = typeof own === 'string' ? own : typeof configType === 'string' ? configType : undefined;
  const annotations = parsed['annotations'];
  return {
    subject,
    descriptor: { mediaType, digest, size: bytes.length, ...(artifactType && { artifactType }), ...(isStringRecord(annotations) && { annotations }) },
  };
}
