import { Readable, type Writable } from 'node:stream';
import { formatImageReference } from '../oci/image-reference.js';
import { TarWriter } from './tar.js';
import { SUBJECT_ANNOTATION } from '../oci/referrers.js';
import type { WalkedImage, WalkedManifest } from './image-walker.js';
import type { WalkedReferrers } from './referrer-walker.js';

/** The annotations containerd and skopeo read to name an image in an OCI image layout. */
export const REF_NAME = 'org.opencontainers.image.ref.name';
export const CONTAINERD_NAME = 'io.containerd.image.name';

/**
 * Writes `images` as an OCI image layout tarball (image-spec "Image Layout"): `oci-layout`,
 * `index.json` naming each image by its full reference, and every manifest and blob once under
 * `blobs/sha256/`. Blob bytes are streamed from the server at `baseUrl` (its cache), never held.
 * skopeo reads it as `oci-archive:FILE:<full reference>`; `pullthrough import` loads it.
 *
 * With `referrers` (of each image, by position): every referrer is an entry too, with its
 * artifactType and annotations and {@link SUBJECT_ANNOTATION} naming its subject (no ref name,
 * so tools that list images skip it), and each fallback tag an ordinary named entry.
 */
export async function writeBundle(
  baseUrl: string,
  images: readonly WalkedImage[],
  out: Writable,
  referrers: ReadonlyArray<WalkedReferrers | undefined> = [],
): Promise<{ files: number; bytes: number }> {
  const tar = new TarWriter(out);
  const named = (manifest: WalkedManifest, name: string) => ({
    mediaType: manifest.mediaType,
    digest: manifest.digest,
    size: manifest.bytes.length,
    annotations: { [REF_NAME]: name, [CONTAINERD_NAME]: name },
  });
  const units: WalkedImage[] = [...images];
  const entries: object[] = images.map((image) => named(image.root, formatImageReference({ ...image.reference, digest: undefined })));
  images.forEach((image, i) => {
    const walked = referrers[i];
    if (!walked) return;
    const repository = `${image.reference.registry}/${image.reference.repository}`;
    for (const referrer of walked.referrers) {
      const { descriptor } = referrer;
      entries.push({ ...descriptor, annotations: { ...descriptor.annotations, [SUBJECT_ANNOTATION]: `${repository}@${referrer.subject}` } });
      units.push(referrer.walked);
    }
    for (const fallback of walked.fallbackTags) {
      entries.push(named(fallback.manifest, `${repository}:${fallback.tag}`));
      units.push({ reference: image.reference, root: fallback.manifest, manifests: [fallback.manifest], blobs: [] });
    }
  });
  const index = { schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: entries };
  await tar.addBuffer('oci-layout', Buffer.from(JSON.stringify({ imageLayoutVersion: '1.0.0' })));
  await tar.addBuffer('index.json', Buffer.from(JSON.stringify(index, null, 2)));
  await tar.addDirectory('blobs/');
  await tar.addDirectory('blobs/sha256/');

  for (const image of units) {
    for (const digest of [...image.manifests.map((m) => m.digest), ...image.blobs.map((b) => b.digest)]) {
      // ustar names stop at 100 bytes: blobs/sha256/<64 hex> fits, longer digests do not.
      if (!digest.startsWith('sha256:')) throw new Error(`${formatImageReference(image.reference)}: only sha256 content can be exported, not ${digest}`);
    }
  }
  const written = new Set<string>();
  let files = 0;
  let bytes = 0;
  for (const image of units) {
    for (const manifest of image.manifests) {
      if (written.has(manifest.digest)) continue;
      written.add(manifest.digest);
      await tar.addBuffer(`blobs/sha256/${manifest.digest.slice('sha256:'.length)}`, manifest.bytes);
      files += 1;
      bytes += manifest.bytes.length;
    }
    const name = `${image.reference.registry}/${image.reference.repository}`;
    for (const blob of image.blobs) {
      if (written.has(blob.digest)) continue;
      written.add(blob.digest);
      const response = await fetch(`${baseUrl}/v2/${name}/blobs/${blob.digest}`);
      if (!response.ok || !response.body) throw new Error(`reading ${blob.digest} from the cache: ${response.status}`);
      await tar.addStream(`blobs/sha256/${blob.digest.slice('sha256:'.length)}`, blob.size, Readable.fromWeb(response.body as import('node:stream/web').ReadableStream));
      files += 1;
      bytes += blob.size;
    }
  }
  await tar.finish();
  return { files, bytes };
}
