/**
 * Thrown by {@link ContentWrite.verify} when the bytes written do not hash to the expected digest
 * or do not have the expected size (and by its sink, past that size). Nothing was committed.
 */
export class DigestMismatchError extends Error {
  override readonly name = 'DigestMismatchError';
  readonly expected: string;
  readonly actual: string;

  constructor(expected: string, actual: string, message?: string) {
    super(message ?? `content does not match its digest: expected ${expected}, got ${actual}`);
    this.expected = expected;
    this.actual = actual;
  }
}
