import assert from 'node:assert/strict';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, it } from 'node:test';
import { digestOf, parseDigest } from '../../src/oci/digest.js';
import type { ContentStore } from '../../src/storage/content-store.js';
import { DigestMismatchError } from '../../src/storage/digest-mismatch-error.js';
import type { MetadataIndex } from '../../src/storage/metadata-index.js';

const hub = { upstream: 'docker.io', repository: 'library/app' };

/** A receiver that keeps a copy of everything (senders reuse their buffers). */
export function collector(): Writable & { bytes(): Buffer } {
  const chunks: Buffer[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      chunks.push(Buffer.from(chunk));
      callback();
    },
  });
  return Object.assign(sink, { bytes: () => Buffer.concat(chunks) });
}

/** Resolves once `predicate` holds, polling each turn of the event loop (bounded). */
export async function until(predicate: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 10_000; i++) {
    if (predicate()) return;
    await new Promise((resolve) => setImmediate(resolve));
  }
  throw new Error(`never happened: ${what}`);
}

function content(size: number, seed: number): Buffer {
  const bytes = Buffer.alloc(size);
  for (let i = 0; i < size; i++) bytes[i] = (i * 31 + seed) & 0xff;
  return bytes;
}

/** One behaviour, every implementation (the disk store and the in-memory fake). */
export function describeContentStore(name: string, make: () => Promise<{ store: ContentStore; index: MetadataIndex }>): void {
  describe(`ContentStore contract: ${name}`, () => {
    it('commits a verified write with its index row, then opens it whole or by range', async () => {
      const { store, index } = await make();
      const bytes = content(300_000, 1);
      const digest = parseDigest(digestOf(bytes));
      const write = await store.beginWrite(digest, { size: bytes.length });
      await pipeline(Readable.from([bytes.subarray(0, 100_000), bytes.subarray(100_000)]), write.sink);
      assert.deepEqual(write.verify(), { digest, size: bytes.length });
      await write.commit({ kind: 'blob', mediaType: null, link: hub });
      assert.deepEqual(index.getContent(digest.value), { digest: digest.value, size: bytes.length, mediaType: null, kind: 'blob' });
      assert.equal(index.isLinked(hub, digest.value), true);
      assert.equal(await store.size(digest), bytes.length);
      const whole = collector();
      assert.equal(await (await store.open(digest)).send(whole), bytes.length);
      assert.ok(whole.bytes().equals(bytes));
      const part = collector();
      const source = await store.open(digest, { range: { start: 10, end: 19 } });
      assert.equal(source.size, 10);
      assert.equal(await source.send(part), 10);
      assert.ok(part.bytes().equals(bytes.subarray(10, 20)));
      // A follower after the commit reads the committed content.
      const late = collector();
      assert.equal(await write.follow().send(late), bytes.length);
      assert.ok(late.bytes().equals(bytes));
    });

    it('rejects an open of content it does not hold with ENOENT', async () => {
      const { store } = await make();
      await assert.rejects(store.open(parseDigest(digestOf(Buffer.from('absent')))), { code: 'ENOENT' });
    });

    it('holds a follower one byte short until verify, and fails it when the write is aborted', async () => {
      const { store, index } = await make();
      const bytes = content(50_000, 2);
      const claimed = parseDigest(digestOf(Buffer.from('something else')));
      const write = await store.beginWrite(claimed, { size: bytes.length });
      const dest = collector();
      const sending = write.follow().send(dest);
      sending.catch(() => undefined);
      await pipeline(Readable.from([bytes]), write.sink);
      await until(() => dest.bytes().length === bytes.length - 1, 'all but the last byte sent');
      assert.throws(() => write.verify(), DigestMismatchError);
      const reason = new Error('the upstream sent the wrong bytes');
      await write.abort(reason);
      await assert.rejects(sending, reason);
      assert.equal(dest.bytes().length, bytes.length - 1, 'a body that failed verification is never received whole');
      await assert.rejects(write.follow().send(collector()), reason);
      assert.equal(index.getContent(claimed.value), undefined);
      assert.equal(await store.size(claimed), undefined);
    });

    it('gives a follower the last byte once verify passed', async () => {
      const { store } = await make();
      const bytes = content(70_000, 3);
      const digest = parseDigest(digestOf(bytes));
      const write = await store.beginWrite(digest, { size: bytes.length });
      const dest = collector();
      const sending = write.follow({ start: 5, end: bytes.length - 1 }).send(dest);
      await pipeline(Readable.from([bytes.subarray(0, 1000), bytes.subarray(1000)]), write.sink);
      await until(() => dest.bytes().length === bytes.length - 6, 'all but the last byte sent');
      write.verify();
      assert.equal(await sending, bytes.length - 5);
      assert.ok(dest.bytes().equals(bytes.subarray(5)));
      await write.abort();
    });

    it('refuses more bytes than the expected size, and a short body at verify', async () => {
      const { store } = await make();
      const bytes = content(1000, 4);
      const digest = parseDigest(digestOf(bytes));
      const long = await store.beginWrite(digest, { size: 999 });
      await assert.rejects(pipeline(Readable.from([bytes]), long.sink), DigestMismatchError);
      await long.abort();
      const short = await store.beginWrite(digest, { size: 1001 });
      await pipeline(Readable.from([bytes]), short.sink);
      assert.throws(() => short.verify(), DigestMismatchError);
      await short.abort();
    });

    it('puts small content once, with its references, and refuses bytes under another digest', async () => {
      const { store, index } = await make();
      const bytes = Buffer.from('{"schemaVersion":2}');
      const digest = parseDigest(digestOf(bytes));
      const child = digestOf(Buffer.from('child'));
      await store.put(digest, bytes, { kind: 'manifest', mediaType: 'application/vnd.oci.image.manifest.v1+json', link: hub, references: [child] });
      await store.put(digest, bytes, { kind: 'manifest', mediaType: 'application/vnd.oci.image.manifest.v1+json', link: hub });
      assert.ok((await store.readAll(digest)).equals(bytes));
      assert.equal(index.getContent(digest.value)?.kind, 'manifest');
      await assert.rejects(store.put(parseDigest(child), bytes, { kind: 'manifest', mediaType: 'x', link: hub }), /hash to something else/);
      assert.equal(await store.size(parseDigest(child)), undefined);
    });

    it('commits a batch of staged files and bytes in one transaction, or none of it', async () => {
      const { store, index } = await make();
      const dir = await store.createStagingDir();
      const blob = content(20_000, 5);
      const made = Buffer.from('made');
      const blobDigest = parseDigest(digestOf(blob));
      const staged = await store.stage(Readable.from([blob]), dir, { digest: blobDigest, size: blob.length });
      await assert.rejects(store.stage(Readable.from([made]), dir, { digest: blobDigest }), DigestMismatchError);
      const madeDigest = parseDigest(digestOf(made));
      const entries = [
        { digest: blobDigest, meta: { kind: 'blob' as const, mediaType: null, link: hub }, staged },
        { digest: madeDigest, meta: { kind: 'manifest' as const, mediaType: 'm/t', link: hub }, bytes: made },
      ];
      await assert.rejects(
        store.commitAll(entries, () => {
          throw new Error('a row of the caller failed');
        }),
        /a row of the caller failed/,
      );
      assert.equal(await store.size(blobDigest), undefined, 'a failed batch leaves no file');
      assert.equal(index.getContent(blobDigest.value), undefined, 'and no row');
      // The rollback took the placed file with it: an import stages afresh.
      const again = await store.stage(Readable.from([blob]), dir, { digest: blobDigest, size: blob.length });
      await store.commitAll([{ ...entries[0]!, staged: again }, entries[1]!], () => index.putTag(hub, 'v1', { digest: madeDigest.value, mediaType: 'm/t', checkedAt: 1 }));
      assert.ok((await store.readAll(blobDigest)).equals(blob));
      assert.equal(index.getTag(hub, 'v1')?.digest, madeDigest.value);
    });
  });
}
