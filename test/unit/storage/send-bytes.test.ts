import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import { ReadBudget } from '../../../src/storage/read-budget.js';
import { sendBytes, type PositionalSource } from '../../../src/storage/send-bytes.js';

/** A source over a buffer, recording whether it was closed. */
function bufferSource(bytes: Buffer, fail?: { at: number; error: Error }) {
  const state = { closed: false };
  const source: PositionalSource = {
    async available(position) {
      if (fail && position >= fail.at) throw fail.error;
      return Math.max(0, bytes.length - position);
    },
    async read(buffer, length, position) {
      return bytes.copy(buffer, 0, position, Math.min(bytes.length, position + length));
    },
    close() {
      state.closed = true;
    },
  };
  return { source, state };
}

/**
 * A receiver that, like a socket, still reads a chunk's memory after write() returned and only
 * lets go of it at the write callback: it copies the chunk at callback time. A sender reusing a
 * buffer too early shows up as corrupted bytes.
 */
function lateCopyingSink() {
  const received: Buffer[] = [];
  const sink = new Writable({
    highWaterMark: 1,
    write(chunk: Buffer, _encoding, callback) {
      setTimeout(() => {
        received.push(Buffer.from(chunk));
        callback();
      }, 1);
    },
  });
  return { sink, received: () => Buffer.concat(received) };
}

const small = () => new ReadBudget({ totalBytes: 64 * 1024, maxChunkBytes: 16 * 1024, minChunkBytes: 4 * 1024 });

describe('sendBytes', () => {
  it('delivers every byte intact while reusing its two buffers', async () => {
    const bytes = randomBytes(300_001);
    const { source, state } = bufferSource(bytes);
    const { sink, received } = lateCopyingSink();
    const budget = small();
    const sent = await sendBytes(source, sink, { start: 0, end: undefined, lease: budget.acquire() });
    assert.equal(sent, bytes.length);
    assert.ok(received().equals(bytes), 'the receiver got exactly the source');
    assert.ok(state.closed, 'the source is closed');
    assert.equal(budget.open, 0, 'the lease is released');
    assert.equal(budget.pooledBytes, 2 * 16 * 1024, 'both buffers are back in the pool');
  });

  it('sends only the asked range and reports progress', async () => {
    const bytes = randomBytes(100_000);
    const { source } = bufferSource(bytes);
    const { sink, received } = lateCopyingSink();
    let progress = 0;
    const sent = await sendBytes(source, sink, { start: 1_000, end: 70_001, lease: small().acquire(), onBytes: (n) => (progress += n) });
    assert.equal(sent, 69_001);
    assert.equal(progress, 69_001);
    assert.ok(received().equals(bytes.subarray(1_000, 70_001)));
  });

  it('rejects when the receiver goes away, and lets go of the source and the lease', async () => {
    const { source, state } = bufferSource(randomBytes(1_000_000));
    const budget = small();
    let writes = 0;
    const sink = new Writable({
      write(_chunk, _encoding, callback) {
        writes += 1;
        if (writes === 3) sink.destroy();
        else setImmediate(callback);
      },
    });
    await assert.rejects(sendBytes(source, sink, { start: 0, end: undefined, lease: budget.acquire() }), { code: 'ERR_STREAM_PREMATURE_CLOSE' });
    assert.ok(state.closed);
    assert.equal(budget.open, 0);
  });

  it('rejects with the source failure, having sent only what came before it', async () => {
    const bytes = randomBytes(100_000);
    const { source, state } = bufferSource(bytes, { at: 50_000, error: new Error('fill failed') });
    const { sink, received } = lateCopyingSink();
    await assert.rejects(sendBytes(source, sink, { start: 0, end: undefined, lease: small().acquire() }), /fill failed/);
    assert.ok(received().length <= 50_000);
    assert.ok(state.closed);
  });
});

describe('ReadBudget', () => {
  it('gives each sender two buffers in turn until the crowd reaches the floor, then one', () => {
    const budget = new ReadBudget();
    assert.equal(budget.buffersFor(1), 2);
    assert.equal(budget.buffersFor(64), 2, '64 senders × 2 × 64 KiB is the 8 MiB total');
    assert.equal(budget.buffersFor(65), 1);
    assert.equal(budget.buffersFor(256), 1);
  });

  it('gives a lone sender the largest reads and shares the total among many, down to the floor', () => {
    const budget = new ReadBudget({ totalBytes: 16 << 20, maxChunkBytes: 1 << 20, minChunkBytes: 64 << 10 });
    assert.equal(new ReadBudget().chunkBytesFor(1), 1 << 20, 'the default');
    assert.equal(budget.chunkBytesFor(1), 1 << 20);
    assert.equal(budget.chunkBytesFor(8), 1 << 20);
    assert.equal(budget.chunkBytesFor(9), 512 << 10, 'a power of two: a crowd of 9 to 16 shares 512 KiB reads');
    assert.equal(budget.chunkBytesFor(64), 128 << 10);
    assert.equal(budget.chunkBytesFor(1000), 64 << 10);
  });

  it('follows the crowd as leases come and go; a second release changes nothing', () => {
    const budget = new ReadBudget({ totalBytes: 4 << 20, maxChunkBytes: 1 << 20, minChunkBytes: 64 << 10 });
    const first = budget.acquire();
    assert.equal(first.chunkBytes, 1 << 20);
    const others = Array.from({ length: 7 }, () => budget.acquire());
    assert.equal(first.chunkBytes, 256 << 10, '8 senders with two buffers each share 4 MiB');
    for (const lease of others) lease.release();
    others[0]!.release();
    assert.equal(budget.open, 1);
    assert.equal(first.chunkBytes, 1 << 20);
  });

  it('hands a returned buffer to the next sender, and keeps no more than its total', () => {
    const budget = new ReadBudget({ totalBytes: 4 << 20, maxChunkBytes: 1 << 20, minChunkBytes: 64 << 10 });
    const lease = budget.acquire();
    const buffer = lease.take();
    lease.give(buffer);
    assert.equal(lease.take(), buffer, 'reused, not allocated again');
    for (let i = 0; i < 10; i++) lease.give(Buffer.alloc(1 << 20));
    assert.equal(budget.pooledBytes, 4 << 20);
  });

  it('makes room for the size senders use now by dropping sizes nobody asks for', () => {
    const budget = new ReadBudget({ totalBytes: 2 << 20, maxChunkBytes: 1 << 20, minChunkBytes: 64 << 10 });
    const alone = budget.acquire();
    alone.give(alone.take());
    alone.give(Buffer.alloc(1 << 20));
    assert.equal(budget.pooledBytes, 2 << 20);
    const crowd = Array.from({ length: 31 }, () => budget.acquire());
    assert.equal(alone.chunkBytes, 64 << 10);
    const small = crowd[0]!.take();
    crowd[0]!.give(small);
    assert.equal(crowd[1]!.take(), small, 'a 1 MiB buffer was dropped to keep the 64 KiB one');
    assert.ok(budget.pooledBytes <= 2 << 20);
  });
});

describe('ReadBudget under a flood of stalled receivers', () => {
  /** A receiver that takes a write and never completes it: a client that stopped reading. */
  function stalledSink(held: Set<ArrayBufferLike>) {
    const sink = new Writable();
    // Like a socket's queue: every chunk handed over stays referenced, none is ever done.
    sink.write = (chunk: Buffer) => {
      held.add(chunk.buffer);
      return false;
    };
    return sink;
  }

  it('bounds the bytes senders hold however many send at once, and admits waiters as slots free', async () => {
    const budget = new ReadBudget();
    // A crowd past the floor reads into one buffer per sender (ReadBudget.buffersFor).
    const bound = 8 * 2 ** 20 + 256 * 64 * 1024;
    const bytes = randomBytes(2 ** 20);
    const held = new Set<ArrayBufferLike>();
    const sinks = Array.from({ length: 1_000 }, () => stalledSink(held));
    const sends = sinks.map((sink) => sendBytes(bufferSource(bytes).source, sink, { start: 0, end: undefined, lease: budget.acquire() }).catch((err: Error) => err));
    await new Promise((resolve) => setTimeout(resolve, 50));
    const heldBytes = () => [...held].reduce((sum, buffer) => sum + buffer.byteLength, 0);
    assert.ok(heldBytes() <= bound, `stalled senders hold ${heldBytes()} bytes, bound ${bound}`);
    assert.ok(budget.open <= 256);
    assert.equal(budget.open + budget.waiting, 1_000);
    // Ten clients go away: ten waiters take their slots and start sending.
    const before = held.size;
    for (const sink of sinks.slice(0, 10)) sink.destroy();
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.ok(held.size > before, 'waiting senders were admitted');
    assert.equal(budget.waiting, 1_000 - 256 - 10);
    for (const sink of sinks) sink.destroy();
    const outcomes = await Promise.all(sends);
    assert.ok(outcomes.every((o) => o instanceof Error && (o as NodeJS.ErrnoException).code === 'ERR_STREAM_PREMATURE_CLOSE'));
    assert.equal(budget.open, 0);
    assert.equal(budget.waiting, 0);
    assert.equal(budget.heldBytes, 0);
  });
});
