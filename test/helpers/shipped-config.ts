import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { loadConfig } from '../../src/config/load-config.js';

/** The mirror address the files in config/ name: the listen address of config/default.yaml. */
export function shippedMirrorAddress(): string {
  return loadConfig(path.resolve('config/default.yaml'), {}).listen;
}

/**
 * The text of a client config file as `config/` ships it, with only the mirror address
 * (`127.0.0.1:5000`) replaced by `mirror`: a test that uses it tests the shipped file, so a broken
 * file fails the test. Throws when the file does not name the shipped mirror address at all.
 */
export async function readShippedClientConfig(file: string, mirror: string): Promise<string> {
  const text = await readFile(path.resolve('config', file), 'utf8');
  const shipped = shippedMirrorAddress();
  if (!text.includes(shipped)) throw new Error(`config/${file} does not name the mirror ${shipped}`);
  return text.replaceAll(shipped, mirror);
}
