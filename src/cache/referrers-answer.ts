import type { Metrics } from '../metrics.js';
import { indexManifests, referrerDescriptors, referrersIndex } from '../oci/referrers.js';
import type { ContentIndex, RepositoryRecord } from '../storage/metadata-index.js';
import type { LookupResult, ReferrersResult } from './registry.js';

/** A stored referrers answer (an image index) as a client gets it: filtered by `artifactType` here, always. */
export function answerReferrers(
  deps: { index: Pick<ContentIndex, 'recordAccess'>; metrics: Metrics },
  link: RepositoryRecord,
  stored: { readonly digest: string; readonly bytes: Buffer },
  lookup: LookupResult,
  artifactType: string | undefined,
  staleBecause?: string,
): ReferrersResult {
  deps.metrics.cacheLookups.inc({ kind: 'referrers', result: lookup });
  deps.index.recordAccess(stored.digest);
  const all = referrerDescriptors(indexManifests(stored.bytes) ?? []);
  const descriptors = artifactType === undefined ? all : all.filter((d) => d.artifactType === artifactType);
  const source = lookup === 'miss' || lookup === 'joined' ? 'upstream' : 'cache';
  return { bytes: referrersIndex(descriptors), isFiltered: artifactType !== undefined, source, result: lookup, upstream: link.upstream, staleBecause };
}
