import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { forEachConcurrently } from '../../src/concurrency.js';

const tick = () => new Promise<void>((resolve) => setImmediate(resolve));

describe('forEachConcurrently', () => {
  it('does every item, never more than `concurrency` at once', async () => {
    const queue = Array.from({ length: 20 }, (_, i) => i);
    const done: number[] = [];
    let running = 0;
    let most = 0;
    await forEachConcurrently(() => queue.shift(), 3, async (item) => {
      running += 1;
      most = Math.max(most, running);
      await tick();
      running -= 1;
      done.push(item);
    });
    assert.equal(most, 3);
    assert.deepEqual(done.sort((a, b) => a - b), Array.from({ length: 20 }, (_, i) => i));
  });

  it('rejects with the first failure and takes no item after it', async () => {
    const queue = Array.from({ length: 20 }, (_, i) => i);
    const started: number[] = [];
    await assert.rejects(
      forEachConcurrently(() => queue.shift(), 2, async (item) => {
        started.push(item);
        await tick();
        if (item === 1) throw new Error('boom');
      }),
      /boom/,
    );
    await tick();
    await tick();
    assert.ok(started.length <= 3, `started ${started.join(',')}`);
  });

  it('stops when the caller empties its queue, and runs with no items at all', async () => {
    const queue = [1, 2, 3, 4];
    const done: number[] = [];
    await forEachConcurrently(() => queue.shift(), 1, async (item) => {
      done.push(item);
      if (item === 2) queue.length = 0;
    });
    assert.deepEqual(done, [1, 2]);
    await forEachConcurrently(() => undefined, 0, async () => assert.fail('no item'));
  });
});
