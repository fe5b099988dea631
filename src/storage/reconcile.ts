import type { Logger } from '../logger.js';
import { parseDigest } from '../oci/digest.js';
import type { BlobStore } from './blob-store.js';
import type { ContentIndex } from './index-parts.js';

/**
 * Makes the index and the files agree after any stop, clean or not: rows whose file is gone
 * are dropped (the content is fetched again on demand); committed files with no row (a crash
 * between rename and insert) are indexed, since a file reaches its place only once verified.
 */
export async function reconcileStorage(store: BlobStore, index: ContentIndex, logger: Logger): Promise<{ dropped: number; adopted: number }> {
  const indexed = new Set(index.allDigests());
  const missing: string[] = [];
  for (const digest of indexed) {
    let size: number | undefined;
    try {
      size = await store.size(parseDigest(digest));
    } catch {
      size = undefined;
    }
    if (size === undefined) missing.push(digest);
  }
  index.deleteContent(missing);
  let adopted = 0;
  for await (const file of store.list()) {
    if (indexed.has(file.digest)) continue;
    try {
      parseDigest(file.digest);
    } catch {
      continue; // Not a name we write; leave it alone.
    }
    index.putContent({ digest: file.digest, size: file.size, mediaType: null, kind: 'blob' });
    adopted += 1;
  }
  if (missing.length > 0 || adopted > 0) {
    logger.warn({ dropped: missing.length, adopted }, 'storage reconciled: index rows without files dropped, files without rows indexed');
  }
  return { dropped: missing.length, adopted };
}
