import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { hostPlatform, parsePlatform, walkImage, type PlatformChoice, type WalkedImage } from '../bundle/image-walker.js';
import { walkReferrers, type WalkedReferrers } from '../bundle/referrer-walker.js';
import { parseDigest } from '../oci/digest.js';
import { referrersTagName } from '../oci/referrers.js';
import type { Config } from '../config/config.js';
import { formatImageReference, parseImageReference, type ImageReference } from '../oci/image-reference.js';
import { createMetadataIndex } from '../storage/metadata-index.js';
import { formatBytes } from '../config/units.js';
import { progressLine, type CommandIo } from './progress.js';
import { openServer } from './server-handle.js';

/** Options every image-walking command shares: images, platforms, where to pull through. */
export const IMAGE_OPTIONS = {
  file: { type: 'string', short: 'f' },
  platform: { type: 'string' },
  'all-platforms': { type: 'boolean' },
  via: { type: 'string' },
  referrers: { type: 'boolean' },
} as const;

export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/** Images from arguments and from `--file` (one per line, `#` comments), parsed and de-duplicated. */
export function readImageList(args: readonly string[], file: string | undefined): ImageReference[] {
  const lines = [...args];
  if (file) lines.push(...readFileSync(file, 'utf8').split('\n').map((l) => l.replace(/#.*/, '').trim()).filter(Boolean));
  if (lines.length === 0) throw new UsageError('name at least one image, or --file with one image per line');
  const seen = new Map<string, ImageReference>();
  for (const line of lines) {
    try {
      const ref = parseImageReference(line);
      seen.set(formatImageReference(ref), ref);
    } catch (err) {
      throw new UsageError(`${JSON.stringify(line)} is not an image reference: ${(err as Error).message}`);
    }
  }
  return [...seen.values()];
}

export function platformChoice(values: { platform?: string | undefined; 'all-platforms'?: boolean | undefined }, arch: string): PlatformChoice {
  if (values['all-platforms'] && values.platform) throw new UsageError('give --platform or --all-platforms, not both');
  if (values['all-platforms']) return 'all';
  if (!values.platform) return [hostPlatform(arch)];
  try {
    return values.platform.split(',').map(parsePlatform);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

/**
 * Pulls each image through the server (one after another, blobs in parallel), reporting
 * progress per image; one failure does not stop the others. Returns what succeeded.
 */
export async function pullImages(
  config: Config,
  images: readonly ImageReference[],
  options: { platforms: PlatformChoice; via?: string | undefined; referrers?: boolean | undefined },
  io: CommandIo,
): Promise<{
  pulled: WalkedImage[];
  /** With `referrers`: each pulled image's referrer tree, by position. */
  referrers: WalkedReferrers[];
  failed: Array<{ image: string; reason: string }>;
  isInProcess: boolean;
  baseUrl: string;
  close(): Promise<void>;
}> {
  const server = await openServer(config, { via: options.via });
  io.err.write(`pulling through ${server.isInProcess ? 'an in-process pullthrough' : server.baseUrl} (storage ${path.resolve(config.storage.root)})\n`);
  const pulled: WalkedImage[] = [];
  const referrers: WalkedReferrers[] = [];
  const failed: Array<{ image: string; reason: string }> = [];
  for (const image of images) {
    const label = formatImageReference(image);
    const line = progressLine(io, label);
    try {
      const walked = await walkImage(server.baseUrl, image, { platforms: options.platforms, onProgress: (p) => line.update(p.bytesDone, p.bytesTotal) });
      const tree = options.referrers ? await walkReferrers(server.baseUrl, walked) : undefined;
      const bytes = walked.blobs.reduce((sum, b) => sum + b.size, 0);
      const extra = tree ? `, ${tree.referrers.length} referrers` : '';
      line.finish(`ok  ${formatBytes(bytes)} in ${walked.blobs.length} blobs, ${walked.manifests.length} manifests${extra}`);
      pulled.push(walked);
      if (tree) referrers.push(tree);
    } catch (err) {
      const message = (err as Error).message;
      const reason = message.startsWith(`${label}: `) ? message.slice(label.length + 2) : message;
      line.finish(`FAILED  ${reason}`);
      failed.push({ image: label, reason });
    }
  }
  return { pulled, referrers, failed, isInProcess: server.isInProcess, baseUrl: server.baseUrl, close: () => server.close() };
}

/**
 * Pins what was pulled, in the storage's own index (so eviction keeps it): the images, and with
 * their referrer trees every referrer, fallback tag and referrers answer.
 */
export function pinImages(config: Config, images: readonly ImageReference[], now: () => number, referrers: readonly WalkedReferrers[] = []): void {
  const index = createMetadataIndex({ path: path.join(path.resolve(config.storage.root), 'index.db') }, { now });
  try {
    images.forEach((image, i) => {
      const link = { upstream: image.registry, repository: image.repository };
      if (image.tag) index.pin(link, image.tag);
      if (image.digest) index.pin(link, image.digest.value);
      const tree = referrers[i];
      if (!tree) return;
      for (const subject of tree.subjects) index.pin(link, referrersTagName(parseDigest(subject)));
      for (const referrer of tree.referrers) index.pin(link, referrer.descriptor.digest);
      for (const fallback of tree.fallbackTags) index.pin(link, fallback.tag);
    });
  } finally {
    index.close();
  }
}

/** `pullthrough preload IMAGE… [--file F] [--platform P,…|--all-platforms] [--referrers] [--no-pin] [--via URL]` */
export async function runPreload(argv: readonly string[], config: Config, io: CommandIo, arch: string): Promise<number> {
  const { values, positionals } = parseArgs({ args: [...argv], allowPositionals: true, options: { ...IMAGE_OPTIONS, 'no-pin': { type: 'boolean' } } });
  const images = readImageList(positionals, values.file);
  const started = io.now();
  const result = await pullImages(config, images, { platforms: platformChoice(values, arch), via: values.via, referrers: values.referrers }, io);
  try {
    if (!values['no-pin'] && result.pulled.length > 0) {
      if (values.via) io.err.write('not pinning: --via names a server whose storage this command does not know\n');
      else pinImages(config, result.pulled.map((p) => p.reference), io.now, result.referrers);
    }
  } finally {
    await result.close();
  }
  const bytes = result.pulled.reduce((sum, p) => sum + p.blobs.reduce((s, b) => s + b.size, 0), 0);
  const seconds = ((io.now() - started) / 1000).toFixed(1);
  io.out.write(`preloaded ${result.pulled.length} of ${images.length} images (${formatBytes(bytes)}) in ${seconds} s${values['no-pin'] ? '' : ', pinned'}\n`);
  for (const failure of result.failed) io.out.write(`failed: ${failure.image}: ${failure.reason}\n`);
  return result.failed.length === 0 ? 0 : 1;
}
