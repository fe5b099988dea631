import type { Readable, Writable } from 'node:stream';
import { once } from 'node:events';

/*
 * Just enough of POSIX ustar (plus the PAX `path` record, which docker and skopeo use for long
 * names) to write and read image bundles as streams: regular files and directories only.
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

function parseOctal(field: Buffer): number {
  const text = field.toString('latin1').replace(/\0.*$/s, '').trim();
  return text === '' ? 0 : Number.parseInt(text, 8);
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

  let paxPath: string | undefined;
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
    const size = parseOctal(header.subarray(124, 136));
    const typeFlag = String.fromCharCode(header[156] ?? 0);
    const prefix = header.subarray(345, 500).toString('utf8').replace(/\0.*$/s, '');
    const baseName = header.subarray(0, 100).toString('utf8').replace(/\0.*$/s, '');
    const padded = Math.ceil(size / BLOCK) * BLOCK;

    if (typeFlag === 'x' || typeFlag === 'g') {
      if (!(await fill(padded))) throw new Error('truncated tar archive: partial PAX header');
      const records = parsePax(take(padded).subarray(0, size));
      if (typeFlag === 'x' && records['path']) paxPath = records['path'];
      continue;
    }
    const name = paxPath ?? (prefix ? `${prefix}/${baseName}` : baseName);
    paxPath = undefined;
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
