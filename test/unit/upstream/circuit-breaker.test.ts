import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CircuitBreaker, type BreakerState } from '../../../src/upstream/circuit-breaker.js';

describe('CircuitBreaker', () => {
  function make() {
    const clock = { now: 0 };
    const changes: BreakerState[] = [];
    const breaker = new CircuitBreaker({ failures: 3, openForMs: 10_000 }, { now: () => clock.now, onChange: (s) => changes.push(s) });
    return { clock, changes, breaker };
  }

  it('opens after the threshold of consecutive failures, not before', () => {
    const { breaker, changes } = make();
    breaker.recordFailure();
    breaker.recordFailure();
    breaker.recordSuccess();
    breaker.recordFailure();
    breaker.recordFailure();
    assert.equal(breaker.state, 'closed');
    breaker.recordFailure();
    assert.equal(breaker.state, 'open');
    assert.equal(breaker.tryAcquire(), false);
    assert.deepEqual(changes, ['open']);
  });

  it('lets exactly one probe through after openFor, and closes on its success', () => {
    const { breaker, clock, changes } = make();
    for (let i = 0; i < 3; i++) breaker.recordFailure();
    clock.now = 9_999;
    assert.equal(breaker.tryAcquire(), false);
    assert.equal(breaker.retryInMs, 1);
    clock.now = 10_000;
    assert.equal(breaker.state, 'half-open');
    assert.equal(breaker.tryAcquire(), true);
    assert.equal(breaker.tryAcquire(), false, 'one probe at a time');
    breaker.recordSuccess();
    assert.equal(breaker.state, 'closed');
    assert.equal(breaker.tryAcquire(), true);
    assert.deepEqual(changes, ['open', 'closed']);
  });

  it('opens again for a full period when the probe fails, and frees the probe when it is abandoned', () => {
    const { breaker, clock } = make();
    for (let i = 0; i < 3; i++) breaker.recordFailure();
    clock.now = 10_000;
    assert.equal(breaker.tryAcquire(), true);
    breaker.recordAbandoned();
    assert.equal(breaker.tryAcquire(), true, 'an abandoned probe frees the slot');
    breaker.recordFailure();
    assert.equal(breaker.state, 'open');
    clock.now = 19_999;
    assert.equal(breaker.tryAcquire(), false);
    clock.now = 20_000;
    assert.equal(breaker.tryAcquire(), true);
  });
});
