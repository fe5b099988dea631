/** One indexed object: a blob or a manifest. */
export interface EvictionNode {
  readonly digest: string;
  readonly size: number;
  readonly lastAccessAt: number;
}

/**
 * Chooses what to delete to bring `totalBytes` down to `targetBytes`, least recently used images
 * first, whole images at a time:
 * - the unit is a root (a manifest no other manifest lists, or a blob no manifest lists) with
 *   everything below it that nothing kept still references;
 * - a blob or child manifest shared with a kept image is kept (distribution#2367 is the bug
 *   this avoids), and an image is never left with some of its blobs gone;
 * - everything reachable from a pinned digest is kept.
 * Pure: the caller deletes what it returns, parents before children.
 */
export function planEviction(input: {
  readonly nodes: readonly EvictionNode[];
  readonly edges: ReadonlyArray<{ readonly parent: string; readonly child: string }>;
  readonly pinned: ReadonlySet<string>;
  readonly targetBytes: number;
}): string[] {
  const byDigest = new Map(input.nodes.map((n) => [n.digest, n]));
  let total = input.nodes.reduce((sum, n) => sum + n.size, 0);
  if (total <= input.targetBytes) return [];

  const children = new Map<string, string[]>();
  const parentCount = new Map<string, number>();
  for (const { parent, child } of input.edges) {
    if (!byDigest.has(parent) || !byDigest.has(child) || parent === child) continue;
    const list = children.get(parent) ?? [];
    if (list.includes(child)) continue;
    list.push(child);
    children.set(parent, list);
    parentCount.set(child, (parentCount.get(child) ?? 0) + 1);
  }

  const kept = new Set<string>();
  const keep = (digest: string) => {
    if (kept.has(digest) || !byDigest.has(digest)) return;
    kept.add(digest);
    for (const child of children.get(digest) ?? []) keep(child);
  };
  for (const digest of input.pinned) keep(digest);

  const roots = input.nodes.filter((n) => !parentCount.has(n.digest) && !kept.has(n.digest)).sort((a, b) => a.lastAccessAt - b.lastAccessAt || a.digest.localeCompare(b.digest));
  const removed: string[] = [];
  const remove = (digest: string) => {
    removed.push(digest);
    total -= byDigest.get(digest)?.size ?? 0;
    for (const child of children.get(digest) ?? []) {
      const left = (parentCount.get(child) ?? 1) - 1;
      parentCount.set(child, left);
      if (left === 0 && !kept.has(child)) remove(child);
    }
  };
  for (const root of roots) {
    if (total <= input.targetBytes) break;
    remove(root.digest);
  }
  return removed;
}
