import type { Readable, Writable } from 'node:stream';
import { once } from 'node:events';

/*
 * Just enough tar to write and read image bundles as streams: regular files and directories.
 * The writer emits plain ustar. The reader also takes what real producers of bundles write:
 * PAX `path` and `size` records (docker, skopeo; Go's archive/tar for entries of 8 GiB and
 * more), base-256 sizes and GNU long names (`././@LongLink`, GNU tar). Kept in-house rather than
 * tar-stream: these four cases are all bundles need, each is tested against hand-built headers
 * (test/unit/bundle/tar.test.ts), and it keeps the reader's pull-based interface.
 */

const BLOCK = 512;

function octal(value: number, width: number): string {
  return `${value.toString(8).padStart(width - 1, '0')}\0`;
}

/** A 512-byte ustar header for a regular file (`type` '0') or a directory ('5'). */
export function tarHeader(name: string, size: number, type: '0' | '5' = '0'): Buffer {
  if (Buffer.byteLength(name) > 100) throw new Error(`tar entry name longer than 100 bytes: ${name}`);
  const header = Buffer.alloc(BLOCK);
  header.write(name, 0, 100, 'utf8');
  header.write(octal(type === '5' ? 0o755 : 0o644, 8), 100);
  header.write(octal(0, 8), 108);
  header.write(octal(0, 8), 116);
  header.write(octal(size, 12), 124);
  header.write(octal(0, 12), 136);
  header.write('        ', 148);
  header.write(type, 156);
  header.write('ustar\0', 257);
  header.write('00', 263);
  let sum = 0;
  for (const byte of header) sum += byte;
  header.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148);
  return header;
}

/** Writes tar entries one after another to `out`, respecting its backpressure. */
export class TarWriter {
  readonly #out: Writable;

  constructor(out: Writable) {
    this.#out = out;
  }

  async #write(chunk: Buffer): Promise<void> {
    if (!this.#out.write(chunk)) await once(this.#out, 'drain');
  }

  async addBuffer(name: string, bytes: Buffer): Promise<void> {
    await this.#write(tarHeader(name, bytes.length));
    await this.#write(bytes);
    await this.#pad(bytes.length);
  }

  async addDirectory(name: string): Promise<void> {
    await this.#write(tarHeader(name.endsWith('/') ? name : `${name}/`, 0, '5'));
  }

  /**
   * Streams exactly `size` bytes from `body` as one entry.
   * @throws Error when the body is shorter or longer than announced (the archive is then unusable).
   */
  async addStream(name: string, size: number, body: Readable): Promise<void> {
    await this.#write(tarHeader(name, size));
    let written = 0;
    for await (const chunk of body) {
      written += (chunk as Buffer).length;
      if (written > size) throw new Error(`${name}: more than the announced ${size} bytes`);
      await this.#write(chunk as Buffer);
    }
    if (written !== size) throw new Error(`${name}: ${written} bytes instead of the announced ${size}`);
    await this.#pad(size);
  }

  /** Two zero blocks end the archive; the caller ends `out`. */
  async finish(): Promise<void> {
    await this.#write(Buffer.alloc(BLOCK * 2));
  }

  async #pad(size: number): Promise<void> {
    const rest = size % BLOCK;
    if (rest !== 0) await this.#write(Buffer.alloc(BLOCK - rest));
  }
}

/** One entry as it is read: its body must be consumed (or drained) before the next entry arrives. */
export interface TarEntry {
  readonly name: string;
  readonly size: number;
  readonly type: 'file' | 'directory' | 'other';
  readonly body: AsyncIterable<Buffer>;
}

/**
 * PAX headers and GNU long names are metadata, a few hundred bytes in practice; they are held in
 * memory, so anything larger is refused (Go's archive/tar draws the same line).
 */
const MAX_METADATA_BYTES = 1024 * 1024;

function parseOctal(field: Buffer): number {
  const text = field.toString('latin1').replace(/\0.*$/s, '').trim();
  return text === '' ? 0 : Number.parseInt(text, 8);
}

/** A numeric header field: octal text, or base-256 (GNU, star) when its first byte has the high bit set. */
function parseNumber(field: Buffer, what: string): number {
  const first = field[0] ?? 0;
  if ((first & 0x80) === 0) {
    const text = field.toString('latin1').replace(/\0.*$/s, '').trim();
    if (!/^[0-7]*$/.test(text)) throw new Error(`damaged tar header: ${what} ${JSON.stringify(text)} is not octal`);
    return text === '' ? 0 : Number.parseInt(text, 8);
  }
  // Base-256: big-endian two's complement with the marker bit; 0xff first is negative.
  if (first === 0xff) throw new Error(`damaged tar header: negative ${what}`);
  let value = first & 0x7f;
  for (const byte of field.subarray(1)) {
    value = value * 256 + byte;
    if (!Number.isSafeInteger(value)) throw new Error(`tar ${what} too large`);
  }
  return value;
}

function parsePax(data: Buffer): Record<string, string> {
  const records: Record<string, string> = {};
  let offset = 0;
  while (offset < data.length) {
    const space = data.indexOf(0x20, offset);
    if (space === -1) break;
    const length = Number(data.subarray(offset, space).toString());
    if (!Number.isSafeInteger(length) || length <= 0) break;
    const record = data.subarray(space + 1, offset + length - 1).toString('utf8');
    const eq = record.indexOf('=');
    if (eq !== -1) records[record.slice(0, eq)] = record.slice(eq + 1);
    offset += length;
  }
  return records;
}

/**
 * Reads a tar stream entry by entry without holding more than one chunk in memory.
 * @throws Error for a truncated archive or a header whose checksum does not add up.
 */
export async function* readTar(input: AsyncIterable<Buffer>): AsyncGenerator<TarEntry> {
  const iterator = input[Symbol.asyncIterator]();
  let buffered: Buffer = Buffer.alloc(0);
  let isDone = false;

  async function fill(wanted: number): Promise<boolean> {
    while (buffered.length < wanted && !isDone) {
      const next = await iterator.next();
      if (next.done) isDone = true;
      else buffered = buffered.length === 0 ? next.value : Buffer.concat([buffered, next.value]);
    }
    return buffered.length >= wanted;
  }

  function take(n: number): Buffer {
    const out = buffered.subarray(0, n);
    buffered = buffered.subarray(n);
    return out;
  }

  /** Read a whole metadata entry's body (PAX records, a GNU long name), bounded. */
  async function takeMetadata(size: number, what: string): Promise<Buffer> {
    if (size > MAX_METADATA_BYTES) throw new Error(`${what} of ${size} bytes: refusing more than ${MAX_METADATA_BYTES} (not a tar a bundle tool writes)`);
    const padded = Math.ceil(size / BLOCK) * BLOCK;
    if (!(await fill(padded))) throw new Error(`truncated tar archive: partial ${what}`);
    return Buffer.from(take(padded).subarray(0, size));
  }

  let paxPath: string | undefined;
  let paxSize: number | undefined;
  let longName: string | undefined;
  for (;;) {
    if (!(await fill(BLOCK))) {
      if (buffered.length === 0) return;
      throw new Error('truncated tar archive: partial header');
    }
    const header = take(BLOCK);
    if (header.every((byte) => byte === 0)) return;
    let sum = 0;
    for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : (header[i] ?? 0);
    if (sum !== parseOctal(header.subarray(148, 156))) throw new Error('not a tar archive, or a damaged one: header checksum mismatch');
    const headerSize = parseNumber(header.subarray(124, 136), 'size');
    const typeFlag = String.fromCharCode(header[156] ?? 0);
    const prefix = header.subarray(345, 500).toString('utf8').replace(/\0.*$/s, '');
    const baseName = header.subarray(0, 100).toString('utf8').replace(/\0.*$/s, '');

    if (typeFlag === 'x' || typeFlag === 'g') {
      const records = parsePax(await takeMetadata(headerSize, 'PAX header'));
      // Global records ('g') would apply to every later entry; bundle tools never write path or size there.
      if (typeFlag === 'x') {
        if (records['path']) paxPath = records['path'];
        if (records['size'] !== undefined) {
          const value = records['size'];
          if (!/^\d+$/.test(value) || !Number.isSafeInteger(Number(value))) throw new Error(`damaged tar archive: PAX size ${JSON.stringify(value)}`);
          paxSize = Number(value);
        }
      }
      continue;
    }
    if (typeFlag === 'L' || typeFlag === 'K') {
      // GNU: the next entry's long name ('L') or long link target ('K'), NUL-terminated.
      const data = await takeMetadata(headerSize, 'GNU long name');
      if (typeFlag === 'L') longName = data.toString('utf8').replace(/\0.*$/s, '');
      continue;
    }
    const size = paxSize ?? headerSize;
    const padded = Math.ceil(size / BLOCK) * BLOCK;
    const name = paxPath ?? longName ?? (prefix ? `${prefix}/${baseName}` : baseName);
    paxPath = undefined;
    paxSize = undefined;
    longName = undefined;
    let remaining = size;
    let consumed = false;
    const body: AsyncIterable<Buffer> = {
      async *[Symbol.asyncIterator]() {
        consumed = true;
        while (remaining > 0) {
          if (buffered.length === 0 && !(await fill(1))) throw new Error(`truncated tar archive: ${name} ends early`);
          const chunk = take(Math.min(remaining, buffered.length));
          remaining -= chunk.length;
          yield chunk;
        }
      },
    };
    const type = typeFlag === '0' || typeFlag === '\0' ? 'file' : typeFlag === '5' ? 'directory' : 'other';
    yield { name: name.replace(/^\.\//, ''), size, type, body };
    if (!consumed || remaining > 0) for await (const _ of body) void _;
    if (!(await fill(padded - size))) throw new Error(`truncated tar archive: ${name} ends early`);
    take(padded - size);
  }
}
