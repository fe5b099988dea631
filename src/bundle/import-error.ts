/** Thrown by `importBundle` when a bundle cannot be imported; by then nothing of it was. */
export class ImportError extends Error {
  override readonly name = 'ImportError';
}
