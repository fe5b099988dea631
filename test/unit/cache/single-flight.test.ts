import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SingleFlight } from '../../../src/cache/single-flight.js';

describe('SingleFlight', () => {
  it('runs concurrent work for one key once and shares its outcome', async () => {
    const flights = new SingleFlight<number>();
    let calls = 0;
    let finish!: (n: number) => void;
    const work = () => {
      calls += 1;
      return new Promise<number>((resolve) => (finish = resolve));
    };
    const a = flights.run('k', work);
    const b = flights.run('k', work);
    const c = flights.run('other', async () => 7);
    assert.equal(a.joined, false);
    assert.equal(b.joined, true);
    finish(42);
    assert.deepEqual(await Promise.all([a.promise, b.promise, c.promise]), [42, 42, 7]);
    assert.equal(calls, 1);
    assert.equal(flights.run('k', async () => 1).joined, false, 'nothing is kept once it settles');
  });
  it('shares failures and forgets them, so the next call tries again', async () => {
    const flights = new SingleFlight<number>();
    const first = flights.run('k', async () => {
      throw new Error('boom');
    });
    const joined = flights.run('k', async () => 1);
    await assert.rejects(first.promise, /boom/);
    await assert.rejects(joined.promise, /boom/);
    assert.equal(await flights.run('k', async () => 2).promise, 2);
  });
});
