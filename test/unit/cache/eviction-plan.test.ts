import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { planEviction, type EvictionNode } from '../../../src/cache/eviction-plan.js';

const node = (digest: string, size: number, lastAccessAt: number): EvictionNode => ({ digest, size, lastAccessAt });

describe('planEviction', () => {
  // Two images share layer L; image A is older. Index X lists manifests M1 and M2.
  const nodes = [
    node('A', 1, 1), node('LA', 100, 1), node('L', 100, 1),
    node('B', 1, 5), node('LB', 100, 5),
    node('X', 1, 3), node('M1', 1, 3), node('M2', 1, 3), node('L1', 50, 3), node('L2', 50, 3),
    node('orphan', 30, 0),
  ];
  const edges = [
    { parent: 'A', child: 'LA' }, { parent: 'A', child: 'L' },
    { parent: 'B', child: 'LB' }, { parent: 'B', child: 'L' },
    { parent: 'X', child: 'M1' }, { parent: 'X', child: 'M2' }, { parent: 'M1', child: 'L1' }, { parent: 'M2', child: 'L2' },
  ];
  const total = nodes.reduce((s, n) => s + n.size, 0);

  it('does nothing under the target', () => {
    assert.deepEqual(planEviction({ nodes, edges, pinned: new Set(), targetBytes: total }), []);
  });

  it('evicts least recently used roots first, and keeps a layer a kept image shares', () => {
    const removed = planEviction({ nodes, edges, pinned: new Set(), targetBytes: total - 120 });
    assert.deepEqual(removed, ['orphan', 'A', 'LA'], 'the shared layer L stays with B');
  });

  it('evicts an index with its manifests and their blobs, whole', () => {
    const removed = planEviction({ nodes, edges, pinned: new Set(), targetBytes: total - 234 });
    assert.deepEqual(removed, ['orphan', 'A', 'LA', 'X', 'M1', 'L1', 'M2', 'L2']);
  });

  it('keeps everything reachable from a pin, and a shared layer once its last user goes', () => {
    const removed = planEviction({ nodes, edges, pinned: new Set(['X']), targetBytes: 0 });
    assert.deepEqual(new Set(removed), new Set(['orphan', 'A', 'LA', 'B', 'LB', 'L']));
  });
});
