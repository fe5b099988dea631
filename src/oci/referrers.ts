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
