import { createHash, type Hash } from 'node:crypto';
import { OciError } from './errors.js';

/** Digest algorithms we can verify, with the length of their hex encoding (image-spec "Digests"). */
const ALGORITHMS = { sha256: 64, sha512: 128 } as const;

export type DigestAlgorithm = keyof typeof ALGORITHMS;

/** A validated `algorithm:hex` digest. Its `hex` is safe to use in a file path. */
export interface Digest {
  readonly algorithm: DigestAlgorithm;
  readonly hex: string;
  /** The canonical `algorithm:hex` form. */
  readonly value: string;
}

const DIGEST_GRAMMAR = /^([a-z0-9]+(?:[.+_-][a-z0-9]+)*):([a-zA-Z0-9=_-]+)$/;

/** True when `reference` has the shape of a digest (as opposed to a tag); it may still be invalid. */
export function looksLikeDigest(reference: string): boolean {
  return reference.includes(':');
}

/**
 * Parses and validates a digest string.
 * @throws OciError DIGEST_INVALID for a malformed digest, an unsupported algorithm or a
 *   wrong-length or non-lowercase-hex encoding.
 */
export function parseDigest(input: string): Digest {
  const match = DIGEST_GRAMMAR.exec(input);
  if (!match) throw new OciError('DIGEST_INVALID', `invalid digest: ${JSON.stringify(input.slice(0, 200))}`);
  const algorithm = match[1] as string;
  const hex = match[2] as string;
  if (!Object.hasOwn(ALGORITHMS, algorithm)) {
    throw new OciError('DIGEST_INVALID', `unsupported digest algorithm: ${algorithm}`);
  }
  const length = ALGORITHMS[algorithm as DigestAlgorithm];
  if (hex.length !== length || !/^[a-f0-9]+$/.test(hex)) {
    throw new OciError('DIGEST_INVALID', `invalid ${algorithm} digest: want ${length} lowercase hex characters`);
  }
  return { algorithm: algorithm as DigestAlgorithm, hex, value: `${algorithm}:${hex}` };
}

/** Starts an incremental hash for `algorithm`. */
export function createDigester(algorithm: DigestAlgorithm): Hash {
  return createHash(algorithm);
}

/** The digest of a whole buffer, as `algorithm:hex`. */
export function digestOf(bytes: Uint8Array, algorithm: DigestAlgorithm = 'sha256'): string {
  return `${algorithm}:${createHash(algorithm).update(bytes).digest('hex')}`;
}
