import { parseDigest } from '../oci/digest.js';
import { formatImageReference } from '../oci/image-reference.js';
import { fallbackTag, indexManifests, referrerDescriptors, type ReferrerDescriptor } from '../oci/referrers.js';
import { MEDIA_TYPES } from '../oci/media-types.js';
import { walkImage, type WalkedImage, type WalkedManifest } from './image-walker.js';

/** One referrer of a subject, walked like an image: its manifest(s) read, its blobs read to the end. */
export interface WalkedReferrer {
  /** The digest of the manifest it refers to. */
  readonly subject: string;
  /** As the referrers API listed it (artifactType, annotations). */
  readonly descriptor: ReferrerDescriptor;
  readonly walked: WalkedImage;
}

/** A fallback tag (`sha256-<hex>`) the upstream holds for a subject, with its index. */
export interface WalkedFallbackTag {
  readonly tag: string;
  readonly manifest: WalkedManifest;
}

export interface WalkedReferrers {
  /** Every manifest whose referrers were asked for (the image's, then the referrers' own). */
  readonly subjects: readonly string[];
  readonly referrers: readonly WalkedReferrer[];
  readonly fallbackTags: readonly WalkedFallbackTag[];
}

/** Bounds on one image's referrer tree: a signature of an SBOM of an image is depth 2. */
const MAX_DEPTH = 8;
const MAX_REFERRERS = 4096;

/**
 * Walks the referrers of every manifest of `image` through the pullthrough server at
 * `baseUrl`, recursively (referrers of referrers), each one's manifests and blobs read to the
 * end so that the server's cache holds them, and the fallback tag of each subject when the
 * upstream has one. Bounded in depth and count.
 * @throws Error describing the first failed request.
 */
export async function walkReferrers(baseUrl: string, image: WalkedImage, options: { signal?: AbortSignal } = {}): Promise<WalkedReferrers> {
  const { registry, repository } = image.reference;
  const name = `${registry}/${repository}`;
  const what = formatImageReference(image.reference);
  const signal = options.signal ?? null;
  const seen = new Set<string>(image.manifests.map((m) => m.digest));
  const subjects: string[] = [];
  const referrers: WalkedReferrer[] = [];
  const fallbackTags: WalkedFallbackTag[] = [];

  let level = image.manifests.map((m) => m.digest);
  for (let depth = 0; depth < MAX_DEPTH && level.length > 0; depth++) {
    const nextLevel: string[] = [];
    for (const subject of level) {
      subjects.push(subject);
      const response = await fetch(`${baseUrl}/v2/${name}/referrers/${subject}`, { signal });
      const body = Buffer.from(await response.arrayBuffer());
      if (!response.ok) throw new Error(`${what}: referrers of ${subject}: ${response.status}`);
      const listed = referrerDescriptors(indexManifests(body) ?? []);

      const tag = fallbackTag(parseDigest(subject));
      const tagged = await fetch(`${baseUrl}/v2/${name}/manifests/${tag}`, { headers: { accept: `${MEDIA_TYPES.ociIndex}, ${MEDIA_TYPES.dockerManifestList}` }, signal });
      const taggedBytes = Buffer.from(await tagged.arrayBuffer());
      if (tagged.ok) {
        const digest = tagged.headers.get('docker-content-digest') ?? '';
        fallbackTags.push({ tag, manifest: { digest, mediaType: tagged.headers.get('content-type') ?? MEDIA_TYPES.ociIndex, bytes: taggedBytes } });
        // An index under the fallback tag may list what the API did not: take those too.
        for (const extra of referrerDescriptors(indexManifests(taggedBytes) ?? [])) if (!listed.some((d) => d.digest === extra.digest)) listed.push(extra);
      } else if (tagged.status !== 404) {
        throw new Error(`${what}: fallback tag ${tag}: ${tagged.status}`);
      }

      for (const descriptor of listed) {
        if (seen.has(descriptor.digest)) continue;
        if (referrers.length >= MAX_REFERRERS) throw new Error(`${what}: more than ${MAX_REFERRERS} referrers`);
        seen.add(descriptor.digest);
        const walked = await walkImage(baseUrl, { registry, repository, tag: undefined, digest: parseDigest(descriptor.digest) }, { platforms: 'all', ...(options.signal && { signal: options.signal }) });
        referrers.push({ subject, descriptor, walked });
        for (const manifest of walked.manifests) nextLevel.push(manifest.digest);
      }
    }
    level = nextLevel;
  }
  return { subjects, referrers, fallbackTags };
}
