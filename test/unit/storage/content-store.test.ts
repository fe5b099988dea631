import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { after, describe, it } from 'node:test';
import { digestOf, parseDigest } from '../../../src/oci/digest.js';
import { createBlobStore } from '../../../src/storage/blob-store.js';
import { createContentStore } from '../../../src/storage/content-store.js';
import { createMetadataIndex } from '../../../src/storage/metadata-index.js';
import { ReadBudget } from '../../../src/storage/read-budget.js';
import { describeContentStore, until } from '../../contract/content-store.contract.js';
import { createMemoryContentStore } from '../../fakes/memory-content-store.js';

const roots: string[] = [];
after(async () => {
  for (const root of roots) await rm(root, { recursive: true, force: true });
});

async function diskStore(budget?: ReadBudget) {
  const root = await mkdtemp(path.join(tmpdir(), 'pullthrough-content-'));
  roots.push(root);
  const files = createBlobStore({ root });
  await files.init();
  const index = createMetadataIndex({ path: ':memory:' }, { now: Date.now });
  return { store: createContentStore({ files, index, ...(budget ? { budget } : {}) }), index, files };
}

describeContentStore('on disk', diskStore);
describeContentStore('in memory (test/fakes)', async () => {
  const index = createMetadataIndex({ path: ':memory:' }, { now: Date.now });
  return { store: createMemoryContentStore({ index }), index };
});

/** A receiver that records, per chunk, whether it is a view of one of `written`'s buffers. */
function witness(written: readonly Buffer[]) {
  const seen = { fromMemory: 0, fromFile: 0 };
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      if (written.some((w) => w.buffer === chunk.buffer)) seen.fromMemory += chunk.length;
      else seen.fromFile += chunk.length;
      callback();
    },
  });
  return { sink, seen };
}

const chunkOf = (size: number, seed: number) => Buffer.alloc(size, seed);

describe('ContentStore on disk: following a write', () => {
  it('hands a follower keeping pace the received chunks themselves, never bytes read back from the file', async () => {
    const { store } = await diskStore();
    const chunks = [chunkOf(64 * 1024, 1), chunkOf(64 * 1024, 2), chunkOf(64 * 1024, 3), chunkOf(64 * 1024, 4)];
    const bytes = Buffer.concat(chunks);
    const write = await store.beginWrite(parseDigest(digestOf(bytes)), { size: bytes.length });
    const { sink, seen } = witness(chunks);
    const sending = write.follow().send(sink);
    for (const chunk of chunks) {
      write.sink.write(chunk);
      // The client keeps pace: it has all it may have before the next chunk arrives.
      const received = chunks.slice(0, chunks.indexOf(chunk) + 1).reduce((n, c) => n + c.length, 0);
      await until(() => seen.fromMemory + seen.fromFile >= Math.min(received, bytes.length - 1), 'the chunk sent');
    }
    write.sink.end();
    await finished(write.sink);
    write.verify();
    assert.equal(await sending, bytes.length);
    assert.equal(seen.fromMemory, bytes.length - 1, 'every byte but the held-back last one came from memory');
    assert.equal(seen.fromFile, 1, 'the last byte, released by verify after the write landed, is read from the file');
    await write.commit({ kind: 'blob', mediaType: null });
  });

  it('sends a follower that is behind the write from the file', async () => {
    const { store } = await diskStore();
    const chunks = [chunkOf(100_000, 5), chunkOf(100_000, 6)];
    const bytes = Buffer.concat(chunks);
    const write = await store.beginWrite(parseDigest(digestOf(bytes)), { size: bytes.length });
    write.sink.end(Buffer.concat(chunks));
    await finished(write.sink);
    const { sink, seen } = witness(chunks);
    const sending = write.follow({ start: 10, end: bytes.length - 1 }).send(sink);
    await until(() => seen.fromFile === bytes.length - 11, 'all but the last byte sent');
    write.verify();
    assert.equal(await sending, bytes.length - 10);
    assert.equal(seen.fromMemory, 0);
    await write.abort();
  });

  it('takes no read buffers for a follower that never falls behind', async () => {
    const budget = new ReadBudget();
    const { store } = await diskStore(budget);
    const chunk = chunkOf(300_000, 7);
    const write = await store.beginWrite({ algorithm: 'sha256' });
    const { sink, seen } = witness([chunk]);
    const sending = write.follow().send(sink);
    write.sink.write(chunk);
    // Unknown length: every byte but the last received is available at once.
    await until(() => seen.fromMemory === chunk.length - 1, 'the chunk sent');
    assert.equal(budget.heldBytes, 0);
    write.sink.end();
    await finished(write.sink);
    write.verify();
    assert.equal(await sending, chunk.length);
    await write.abort();
  });
});

describe('ContentStore on disk: the commit point', () => {
  it('resolves a commit in the turn its index row is written, also when the content was in place already', async () => {
    // A fill releases its disk claim once commit resolves; any I/O turn in between would let an
    // eviction count the bytes twice (index and claim) and evict more than it must.
    const root = await mkdtemp(path.join(tmpdir(), 'pullthrough-content-'));
    roots.push(root);
    const files = createBlobStore({ root });
    await files.init();
    const index = createMetadataIndex({ path: ':memory:' }, { now: Date.now });
    let turnPassed: boolean | undefined;
    const watched = {
      transaction: <T>(work: () => T) => index.transaction(work),
      putContent: (...args: Parameters<typeof index.putContent>) => {
        turnPassed = false;
        setImmediate(() => (turnPassed = true));
        index.putContent(...args);
      },
    };
    const store = createContentStore({ files, index: watched });
    const bytes = chunkOf(10_000, 9);
    const digest = parseDigest(digestOf(bytes));
    for (const round of ['first', 'again, over the same content']) {
      const write = await store.beginWrite(digest, { size: bytes.length });
      write.sink.end(bytes);
      await finished(write.sink);
      write.verify();
      await write.commit({ kind: 'blob', mediaType: null });
      assert.equal(turnPassed, false, `${round}: no turn of the event loop between the index row and the commit's end`);
    }
    assert.equal((await files.listTemp()).length, 0, 'the second temp file went');
  });
});

