import { digestOf, parseDigest } from '../oci/digest.js';
import { parseImageReference, type ImageReference } from '../oci/image-reference.js';
import { declaredMediaType, manifestReferences, type Descriptor } from '../oci/manifest.js';
import { isIndexMediaType, MEDIA_TYPES } from '../oci/media-types.js';
import { referrerDescriptors, referrersIndex, referrersTagName, SUBJECT_ANNOTATION, type ReferrerDescriptor } from '../oci/referrers.js';
import type { ContentStore } from '../storage/content-store.js';
import type { MetadataIndex, RepositoryRecord } from '../storage/metadata-index.js';
import type { BundleContent, ImportedImage } from './import-bundle.js';
import { ImportError } from './import-error.js';

/** The referrers of one subject a bundle carries: what the referrers API answers for it after import. */
export interface ImportedReferrersAnswer {
  readonly link: RepositoryRecord;
  readonly subject: string;
  readonly descriptors: readonly ReferrerDescriptor[];
}

type IndexEntry = Descriptor & { annotations?: Record<string, string> };

/** True for an index.json entry that is a referrer (see export's {@link SUBJECT_ANNOTATION}), not a named image. */
export function isReferrerEntry(entry: unknown): boolean {
  return typeof (entry as IndexEntry | null)?.annotations?.[SUBJECT_ANNOTATION] === 'string';
}

/**
 * The referrer entries of an OCI layout's index.json, each as an image to import (by digest,
 * with its whole tree, which must be in the bundle), and the answers they make per subject.
 * @throws ImportError naming a referrer whose subject or content is not right.
 */
export async function referrerImages(index: unknown, content: BundleContent): Promise<{ images: ImportedImage[]; answers: ImportedReferrersAnswer[] }> {
  const entries = ((index as { manifests?: unknown[] } | null)?.manifests ?? []).filter(isReferrerEntry) as IndexEntry[];
  const images: ImportedImage[] = [];
  const answers = new Map<string, { link: RepositoryRecord; subject: string; descriptors: ReferrerDescriptor[] }>();
  for (const entry of entries) {
    const named = entry.annotations?.[SUBJECT_ANNOTATION] ?? '';
    let subject: ImageReference;
    try {
      subject = parseImageReference(named);
      if (!subject.digest || !named.includes('/')) throw new Error('no digest');
    } catch {
      throw new ImportError(`index.json: referrer ${entry.digest} names its subject as ${JSON.stringify(named)}, not registry/repository@digest`);
    }
    const { [SUBJECT_ANNOTATION]: _ours, ...annotations } = entry.annotations ?? {};
    const [descriptor] = referrerDescriptors([{ ...entry, ...(Object.keys(annotations).length > 0 ? { annotations } : { annotations: undefined }) }]);
    if (!descriptor) throw new ImportError(`index.json: referrer entry ${JSON.stringify(entry.digest)} is not a descriptor`);
    parseDigest(descriptor.digest);

    const manifests: Array<Descriptor & { bytes: Buffer; children: string[] }> = [];
    const blobs = new Map<string, Descriptor>();
    const visit = async (node: Descriptor, isRoot: boolean): Promise<void> => {
      const bytes = await content.readManifest(node.digest);
      if (!bytes) {
        if (!isRoot) return;
        throw new ImportError(`referrer ${node.digest} of ${named} is missing from the bundle`);
      }
      const mediaType = node.mediaType || declaredMediaType(bytes) || '';
      const refs = manifestReferences(bytes, mediaType);
      manifests.push({ ...node, mediaType, bytes, children: [...refs.manifests, ...refs.blobs].map((d) => d.digest) });
      if (isIndexMediaType(mediaType)) for (const child of refs.manifests) await visit(child, false);
      for (const blob of refs.blobs) {
        if (!content.staged.has(blob.digest)) throw new ImportError(`referrer ${node.digest} of ${named}: blob ${blob.digest} is missing from the bundle`);
        blobs.set(blob.digest, blob);
      }
    };
    await visit(descriptor, true);
    const reference: ImageReference = { registry: subject.registry, repository: subject.repository, tag: undefined, digest: parseDigest(descriptor.digest) };
    images.push({ reference, root: { mediaType: manifests[0]!.mediaType, digest: descriptor.digest, size: descriptor.size }, manifests, blobs: [...blobs.values()] });

    const key = `${subject.registry}/${subject.repository}@${subject.digest.value}`;
    const answer = answers.get(key) ?? { link: { upstream: subject.registry, repository: subject.repository }, subject: subject.digest.value, descriptors: [] };
    if (!answer.descriptors.some((d) => d.digest === descriptor.digest)) answer.descriptors.push(descriptor);
    answers.set(key, answer);
  }
  return { images, answers: [...answers.values()] };
}

/**
 * Indexes each subject's referrers answer as the server keeps it (an index under the reserved
 * tag row), after the referrers themselves were committed: offline, the referrers API answers
 * as it did online. Pinned with the rest when `pin`.
 */
export async function commitReferrersAnswers(
  answers: readonly ImportedReferrersAnswer[],
  deps: { content: ContentStore; index: MetadataIndex; now: () => number },
  options: { pin: boolean },
): Promise<void> {
  for (const { link, subject, descriptors } of answers) {
    const bytes = referrersIndex(descriptors);
    const digest = parseDigest(digestOf(bytes));
    await deps.content.put(digest, bytes, { kind: 'manifest', mediaType: MEDIA_TYPES.ociIndex, link, references: descriptors.map((d) => d.digest) });
    const tag = referrersTagName(parseDigest(subject));
    deps.index.putTag(link, tag, { digest: digest.value, mediaType: MEDIA_TYPES.ociIndex, checkedAt: deps.now() });
    if (options.pin) deps.index.pin(link, tag);
  }
}
