import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { readTar, tarHeader } from '../../../src/bundle/tar.js';

const BLOCK = 512;

/** A ustar header with `edit` applied to it, its checksum recomputed. */
function header(name: string, size: number, edit: (h: Buffer) => void = () => {}): Buffer {
  const h = tarHeader(name, size);
  edit(h);
  h.write('        ', 148);
  let sum = 0;
  for (const byte of h) sum += byte;
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148);
  return h;
}

const pad = (n: number) => Buffer.alloc((BLOCK - (n % BLOCK)) % BLOCK);
const typed = (type: string) => (h: Buffer) => void h.write(type, 156);

/** A PAX extended header entry ('x') carrying `records`. */
function pax(records: Record<string, string>): Buffer {
  const body = Buffer.from(
    Object.entries(records)
      .map(([key, value]) => {
        const rest = ` ${key}=${value}\n`;
        let length = rest.length + 1;
        while (String(length).length + rest.length !== length) length += 1;
        return `${length}${rest}`;
      })
      .join(''),
  );
  return Buffer.concat([header('PaxHeader', body.length, typed('x')), body, pad(body.length)]);
}

function entry(name: string, bytes: Buffer, edit?: (h: Buffer) => void): Buffer {
  return Buffer.concat([header(name, bytes.length, edit), bytes, pad(bytes.length)]);
}

const END = Buffer.alloc(BLOCK * 2);

/** Reads an archive fed in small chunks, the way a file stream would. */
async function read(archive: Buffer): Promise<Array<{ name: string; size: number; type: string; bytes: Buffer }>> {
  async function* chunks() {
    for (let i = 0; i < archive.length; i += 700) yield archive.subarray(i, i + 700);
  }
  const out = [];
  for await (const e of readTar(chunks())) {
    const parts: Buffer[] = [];
    for await (const chunk of e.body) parts.push(chunk);
    out.push({ name: e.name, size: e.size, type: e.type, bytes: Buffer.concat(parts) });
  }
  return out;
}

describe('tar reader', () => {
  it('reads plain ustar entries and PAX paths', async () => {
    const long = `blobs/sha256/${'a'.repeat(64)}/${'b'.repeat(64)}`;
    const entries = await read(Buffer.concat([entry('oci-layout', Buffer.from('{}')), pax({ path: long }), entry('ignored', Buffer.from('xyz')), END]));
    assert.deepEqual(entries.map((e) => [e.name, e.bytes.toString()]), [['oci-layout', '{}'], [long, 'xyz']]);
  });

  it("takes the size from a PAX size record (Go's archive/tar writes one for entries of 8 GiB and more)", async () => {
    const bytes = Buffer.alloc(1500, 7);
    // Go leaves the header's size field at zero when the size does not fit it, and says it in PAX.
    const archive = Buffer.concat([pax({ size: String(bytes.length) }), header('big', 0), bytes, pad(bytes.length), entry('next', Buffer.from('n')), END]);
    const entries = await read(archive);
    assert.deepEqual(entries.map((e) => [e.name, e.size]), [['big', 1500], ['next', 1]]);
    assert.ok(entries[0]!.bytes.equals(bytes));
  });

  it('reads base-256 (GNU binary) sizes', async () => {
    const bytes = Buffer.alloc(700, 3);
    const binarySize = (h: Buffer) => {
      h.fill(0, 124, 136);
      h[124] = 0x80;
      h.writeUIntBE(bytes.length, 130, 6);
    };
    const entries = await read(Buffer.concat([header('binary', 0, binarySize), bytes, pad(bytes.length), END]));
    assert.deepEqual(entries.map((e) => [e.name, e.size]), [['binary', 700]]);
    assert.ok(entries[0]!.bytes.equals(bytes));
  });

  it('reads GNU long names (././@LongLink)', async () => {
    const long = `${'n'.repeat(150)}/manifest.json`;
    const name = Buffer.from(`${long}\0`);
    const archive = Buffer.concat([header('././@LongLink', name.length, typed('L')), name, pad(name.length), entry(long.slice(0, 100), Buffer.from('[]')), END]);
    assert.deepEqual((await read(archive)).map((e) => [e.name, e.bytes.toString()]), [[long, '[]']]);
  });

  it('refuses a PAX header or long name too large to be one, without buffering it', async () => {
    const huge = 64 * 1024 * 1024;
    const paxHeader = header('PaxHeader', huge, typed('x'));
    await assert.rejects(read(Buffer.concat([paxHeader, Buffer.alloc(BLOCK)])), /PAX header of 67108864 bytes/);
    const longName = header('././@LongLink', huge, typed('L'));
    await assert.rejects(read(Buffer.concat([longName, Buffer.alloc(BLOCK)])), /long name of 67108864 bytes/);
  });

  it('refuses sizes it cannot represent exactly', async () => {
    const negative = (h: Buffer) => {
      h.fill(0xff, 124, 136);
    };
    await assert.rejects(read(Buffer.concat([header('neg', 0, negative), END])), /size/);
    await assert.rejects(read(Buffer.concat([pax({ size: '1e3' }), header('bad', 0), END])), /size/);
  });
});
