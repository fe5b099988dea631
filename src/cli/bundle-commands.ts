import { createReadStream, createWriteStream } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { finished } from 'node:stream/promises';
import { parseArgs } from 'node:util';
import { writeBundle } from '../bundle/export-bundle.js';
import { importBundle } from '../bundle/import-bundle.js';
import type { Config } from '../config/config.js';
import { createBlobStore } from '../storage/blob-store.js';
import { createContentStore } from '../storage/content-store.js';
import { createMetadataIndex } from '../storage/metadata-index.js';
import { IMAGE_OPTIONS, platformChoice, pullImages, readImageList, UsageError } from './preload.js';
import { formatBytes } from '../config/units.js';
import type { CommandIo } from './progress.js';

/** `pullthrough export IMAGE… -o FILE [--file F] [--platform P,…|--all-platforms] [--referrers] [--via URL]` */
export async function runExport(argv: readonly string[], config: Config, io: CommandIo, arch: string): Promise<number> {
  const { values, positionals } = parseArgs({ args: [...argv], allowPositionals: true, options: { ...IMAGE_OPTIONS, output: { type: 'string', short: 'o' } } });
  if (!values.output) throw new UsageError('name the bundle to write with -o FILE');
  const images = readImageList(positionals, values.file);
  const result = await pullImages(config, images, { platforms: platformChoice(values, arch), via: values.via, referrers: values.referrers }, io);
  try {
    if (result.failed.length > 0) {
      for (const failure of result.failed) io.out.write(`failed: ${failure.image}: ${failure.reason}\n`);
      io.out.write('no bundle written: every image must be pulled first\n');
      return 1;
    }
    const target = path.resolve(values.output);
    const partial = `${target}.partial`;
    const out = createWriteStream(partial);
    try {
      const written = await writeBundle(result.baseUrl, result.pulled, out, result.referrers);
      out.end();
      await finished(out);
      await rename(partial, target);
      io.out.write(`wrote ${target}: ${result.pulled.length} images, ${written.files} files, ${formatBytes(written.bytes)}\n`);
    } catch (err) {
      out.destroy();
      await rm(partial, { force: true });
      throw err;
    }
    return 0;
  } finally {
    await result.close();
  }
}

/** `pullthrough import BUNDLE.tar [--no-pin]`: loads an export or a `docker save` archive into this config's storage. */
export async function runImport(argv: readonly string[], config: Config, io: CommandIo): Promise<number> {
  const { values, positionals } = parseArgs({ args: [...argv], allowPositionals: true, options: { 'no-pin': { type: 'boolean' } } });
  if (positionals.length !== 1) throw new UsageError('name one bundle to import');
  const store = createBlobStore({ root: config.storage.root });
  // A server may be running on this storage: its fills in tmp/ must stay.
  await store.init({ purgeTemp: false });
  const index = createMetadataIndex({ path: path.join(store.root, 'index.db') }, { now: io.now });
  try {
    const result = await importBundle(
      createReadStream(positionals[0]!),
      { content: createContentStore({ files: store, index }), index, upstreamHosts: new Set(config.upstreams.map((u) => u.host)), now: io.now, maxManifestBytes: config.cache.maxManifestBytes },
      { pin: !values['no-pin'] },
    );
    for (const image of result.images) io.out.write(`imported ${image}\n`);
    io.out.write(`imported ${result.images.length} images, ${result.files} files, ${formatBytes(result.bytes)}${values['no-pin'] ? '' : ', pinned'}\n`);
    return 0;
  } finally {
    index.close();
  }
}
