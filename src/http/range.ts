/** The outcome of reading a `Range` header against a representation of `size` bytes. */
export type RangeResult =
  /** No usable Range: send the whole body with 200 (RFC 9110 §14.2 lets a server ignore a bad or multi-part one). */
  | { readonly kind: 'full' }
  /** One satisfiable range, both ends inclusive: 206. */
  | { readonly kind: 'partial'; readonly start: number; readonly end: number }
  /** A valid range that lies beyond the content: 416. */
  | { readonly kind: 'unsatisfiable' };

const BYTE_RANGE = /^bytes=(\d*)-(\d*)$/;

/** Reads a single-range `bytes=` header (RFC 9110 §14.1.2); `bytes=N-` is how containerd resumes. */
export function parseRange(header: string | undefined, size: number): RangeResult {
  if (header === undefined) return { kind: 'full' };
  const match = BYTE_RANGE.exec(header.trim().replace(/\s+/g, ''));
  if (!match) return { kind: 'full' };
  const [, first = '', last = ''] = match;
  if (first === '' && last === '') return { kind: 'full' };
  if (first === '') {
    const suffix = Number(last);
    if (suffix === 0 || size === 0) return { kind: 'unsatisfiable' };
    return { kind: 'partial', start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(first);
  const end = last === '' ? Infinity : Number(last);
  if (!Number.isSafeInteger(start) || end < start) return { kind: 'full' };
  if (start >= size) return { kind: 'unsatisfiable' };
  return { kind: 'partial', start, end: Math.min(end, size - 1) };
}
