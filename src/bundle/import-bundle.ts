import { readFile, rm } from 'node:fs/promises';
import { parseDigest } from '../oci/digest.js';
import { formatImageReference, parseImageReference, type ImageReference } from '../oci/image-reference.js';
import { declaredMediaType, manifestReferences, type Descriptor } from '../oci/manifest.js';
import { isIndexMediaType } from '../oci/media-types.js';
import type { CommitEntry, ContentStore } from '../storage/content-store.js';
import { DigestMismatchError } from '../storage/digest-mismatch-error.js';
import type { MetadataIndex, RepositoryRecord } from '../storage/metadata-index.js';
import { CONTAINERD_NAME, REF_NAME } from './export-bundle.js';
import { legacyDockerImages } from './docker-archive.js';
import { ImportError } from './import-error.js';
import { commitReferrersAnswers, isReferrerEntry, referrerImages } from './import-referrers.js';
import { readTar } from './tar.js';

/** A file of the bundle, verified and synced in tmp/, not yet committed. */
export interface StagedFile {
  readonly tempPath: string;
  readonly digest: string;
  readonly size: number;
}

/** Content the bundle provides: the staged files by digest, and manifests we made (docker save). */
export interface BundleContent {
  readonly staged: ReadonlyMap<string, StagedFile>;
  readManifest(digest: string): Promise<Buffer | undefined>;
}

/** One image to index: its name, its root manifest and everything under it. */
export interface ImportedImage {
  readonly reference: ImageReference;
  readonly root: Descriptor;
  readonly manifests: ReadonlyArray<Descriptor & { bytes: Buffer; children: readonly string[] }>;
  readonly blobs: readonly Descriptor[];
}

const SMALL_FILES = new Set(['oci-layout', 'index.json', 'manifest.json', 'repositories']);
const MAX_METADATA_BYTES = 16 * 2 ** 20;
const BLOB_PATH = /^blobs\/([a-z0-9]+)\/([a-f0-9]+)$/;

async function collect(body: AsyncIterable<Buffer>, limit: number, name: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    size += chunk.length;
    if (size > limit) throw new ImportError(`${name} is larger than ${limit} bytes: not an image bundle`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

/**
 * Reads a bundle (an OCI image layout tar, as `pullthrough export` or `skopeo copy oci-archive:`
 * write it, or a `docker save` archive) into the cache: every file is hashed as it streams into
 * tmp/, every digest is checked, the image's whole tree must be present, and only then is
 * anything committed and indexed. A damaged or tampered bundle leaves the cache untouched.
 * @throws ImportError saying what is wrong with the bundle.
 */
export async function importBundle(
  input: AsyncIterable<Buffer>,
  deps: { content: ContentStore; index: MetadataIndex; upstreamHosts: ReadonlySet<string>; now: () => number; maxManifestBytes: number },
  options: { pin: boolean },
): Promise<{ images: string[]; files: number; bytes: number }> {
  const byName = new Map<string, StagedFile>();
  const staged = new Map<string, StagedFile>();
  const metadata = new Map<string, Buffer>();
  // In a directory of its own: a long import outlives the age at which gc takes a temp file for dead.
  const stagingDir = await deps.content.createStagingDir();
  // Every staged file goes at the end but the ones committed (adopted into blobs/ by rename).
  const discardAll = () => rm(stagingDir, { recursive: true, force: true });
  try {
    for await (const entry of readTar(input)) {
      if (entry.type !== 'file') continue;
      if (SMALL_FILES.has(entry.name)) {
        metadata.set(entry.name, await collect(entry.body, MAX_METADATA_BYTES, entry.name));
        continue;
      }
      const blobPath = BLOB_PATH.exec(entry.name);
      const expected = blobPath ? parseDigest(`${blobPath[1]}:${blobPath[2]}`) : undefined;
      try {
        const file = await deps.content.stage(entry.body, stagingDir, { digest: expected, size: expected ? entry.size : undefined });
        const stagedFile = { tempPath: file.tempPath, digest: file.digest.value, size: file.size };
        byName.set(entry.name, stagedFile);
        staged.set(stagedFile.digest, stagedFile);
      } catch (err) {
        if (err instanceof DigestMismatchError) throw new ImportError(`the bundle is damaged or was tampered with: ${entry.name} does not match its digest; nothing was imported`, { cause: err });
        throw err;
      }
    }
  } catch (err) {
    await discardAll();
    if (err instanceof ImportError) throw err;
    throw new ImportError(`cannot read the bundle: ${(err as Error).message}; nothing was imported`, { cause: err });
  }

  try {
    const content: BundleContent = {
      staged,
      async readManifest(digest) {
        const file = staged.get(digest);
        if (file) return file.size <= deps.maxManifestBytes ? readFile(file.tempPath) : undefined;
        const record = deps.index.getContent(digest);
        return record ? deps.content.readAll(parseDigest(digest)) : undefined;
      },
    };
    const images = metadata.has('index.json')
      ? await ociLayoutImages(JSON.parse(metadata.get('index.json')!.toString()) as unknown, content)
      : metadata.has('manifest.json')
        ? await legacyDockerImages(JSON.parse(metadata.get('manifest.json')!.toString()) as unknown, byName)
        : undefined;
    if (!images) throw new ImportError('not an image bundle: it has neither index.json (OCI image layout) nor manifest.json (docker save)');
    const unknownHosts = [...new Set(images.map((i) => i.reference.registry).filter((h) => !deps.upstreamHosts.has(h)))];
    if (unknownHosts.length > 0) {
      throw new ImportError(`no upstream is configured for ${unknownHosts.join(', ')}: add ${unknownHosts.length > 1 ? 'them' : 'it'} to upstreams (offline: true if it is unreachable here)`);
    }
    // Referrers (export --referrers) come in with the images, then the answers that list them.
    const referrers = metadata.has('index.json') ? await referrerImages(JSON.parse(metadata.get('index.json')!.toString()) as unknown, content) : { images: [], answers: [] };
    const referrerHosts = [...new Set(referrers.images.map((i) => i.reference.registry).filter((h) => !deps.upstreamHosts.has(h)))];
    if (referrerHosts.length > 0) throw new ImportError(`referrers in the bundle name ${referrerHosts.join(', ')}, for which no upstream is configured`);
    const result = await commit([...images, ...referrers.images], staged, deps, options);
    await commitReferrersAnswers(referrers.answers, deps, options);
    return { ...result, images: result.images.slice(0, images.length) };
  } catch (err) {
    if (err instanceof SyntaxError) throw new ImportError(`the bundle's index is not valid JSON: ${err.message}`);
    throw err;
  } finally {
    await discardAll();
  }
}

/**
 * Commits every file and row of the images in one {@link ContentStore.commitAll}: a failure on
 * the way leaves the cache as it was. A staged file whose content is already cached is left for
 * the caller to discard.
 */
async function commit(
  images: readonly ImportedImage[],
  staged: ReadonlyMap<string, StagedFile>,
  deps: { content: ContentStore; index: MetadataIndex; now: () => number },
  options: { pin: boolean },
): Promise<{ images: string[]; files: number; bytes: number }> {
  let bytes = 0;
  const seen = new Set<string>();
  // One entry per image and content, as each image's repository links it; a file is placed once.
  const entries: CommitEntry[] = [];
  const add = (descriptor: { digest: string; mediaType: string | null; kind: 'blob' | 'manifest' }, link: RepositoryRecord, made?: { bytes: Buffer; children: readonly string[] }) => {
    const digest = parseDigest(descriptor.digest);
    const file = staged.get(descriptor.digest);
    if (!seen.has(descriptor.digest)) bytes += file?.size ?? made?.bytes.length ?? 0;
    seen.add(descriptor.digest);
    const meta = { kind: descriptor.kind, mediaType: descriptor.mediaType, link, references: made?.children };
    if (file) entries.push({ digest, meta, staged: { tempPath: file.tempPath, digest, size: file.size } });
    else if (made) entries.push({ digest, meta, bytes: made.bytes });
  };
  const linkOf = (image: ImportedImage) => ({ upstream: image.reference.registry, repository: image.reference.repository });
  for (const image of images) {
    for (const blob of image.blobs) add({ digest: blob.digest, mediaType: blob.mediaType || null, kind: 'blob' }, linkOf(image));
    for (const manifest of image.manifests) add({ digest: manifest.digest, mediaType: manifest.mediaType, kind: 'manifest' }, linkOf(image), manifest);
  }
  await deps.content.commitAll(entries, () => {
    for (const image of images) {
      const link = linkOf(image);
      if (image.reference.tag) deps.index.putTag(link, image.reference.tag, { digest: image.root.digest, mediaType: image.root.mediaType, checkedAt: deps.now() });
      // The operator who imports a bundle vouches for it: its images are for every client of this instance.
      deps.index.markPublic(link);
      if (options.pin) deps.index.pin(link, image.reference.tag ?? image.root.digest);
    }
  });
  return { images: images.map((i) => formatImageReference(i.reference)), files: seen.size, bytes };
}

/** Walks an OCI image layout's index.json down to every manifest and blob, which must all be there. */
async function ociLayoutImages(index: unknown, content: BundleContent): Promise<ImportedImage[]> {
  const entries = (index as { manifests?: Array<Descriptor & { annotations?: Record<string, string> }> }).manifests ?? [];
  const images: ImportedImage[] = [];
  for (const entry of entries) {
    if (isReferrerEntry(entry)) continue;
    const name = entry.annotations?.[CONTAINERD_NAME] ?? entry.annotations?.[REF_NAME];
    let reference: ImageReference;
    try {
      if (!name || !name.includes('/')) throw new Error('no full image name');
      reference = parseImageReference(name);
    } catch {
      throw new ImportError(`index.json names ${entry.digest} ${name ? `only as ${JSON.stringify(name)}` : 'with no name'}: pullthrough needs the full image name (registry/repository:tag) in ${CONTAINERD_NAME} or ${REF_NAME}`);
    }
    const manifests: Array<Descriptor & { bytes: Buffer; children: string[] }> = [];
    const blobs = new Map<string, Descriptor>();
    const visit = async (descriptor: Descriptor, isRoot: boolean): Promise<void> => {
      const bytes = await content.readManifest(descriptor.digest);
      if (!bytes) {
        // An index may list platforms the bundle was not made with; the image itself must be whole.
        if (!isRoot) return;
        throw new ImportError(`${name}: manifest ${descriptor.digest} is missing from the bundle`);
      }
      const mediaType = descriptor.mediaType || declaredMediaType(bytes) || '';
      const refs = manifestReferences(bytes, mediaType);
      manifests.push({ ...descriptor, mediaType, bytes, children: [...refs.manifests, ...refs.blobs].map((d) => d.digest) });
      if (isIndexMediaType(mediaType)) {
        for (const child of refs.manifests) await visit(child, false);
        if (manifests.length === 1) throw new ImportError(`${name}: none of the index's manifests is in the bundle`);
      }
      for (const blob of refs.blobs) {
        if (!content.staged.has(blob.digest)) throw new ImportError(`${name}: blob ${blob.digest} is missing from the bundle`);
        blobs.set(blob.digest, blob);
      }
    };
    await visit(entry, true);
    images.push({ reference, root: { mediaType: manifests[0]!.mediaType, digest: entry.digest, size: entry.size }, manifests, blobs: [...blobs.values()] });
  }
  if (images.length === 0) throw new ImportError('index.json lists no images');
  return images;
}
