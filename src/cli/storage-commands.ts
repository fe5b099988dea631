import { existsSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { GC_GRACE_MS } from '../app.js';
import { createCacheAdmin, type CacheAdmin } from '../cache/cache-admin.js';
import { createStorageKeeper } from '../cache/storage-keeper.js';
import type { Config } from '../config/config.js';
import { createSilentLogger } from '../logger.js';
import { createMetrics } from '../metrics.js';
import { formatImageReference, parseImageReference } from '../oci/image-reference.js';
import { createBlobStore } from '../storage/blob-store.js';
import { createManifestCache } from '../storage/manifest-cache.js';
import { createMetadataIndex } from '../storage/metadata-index.js';
import { readStorageOwner } from '../storage/storage-lock.js';
import { UsageError } from './preload.js';
import { formatAgo, formatBytes } from '../config/units.js';
import type { CommandIo } from './progress.js';

/** Opens this config's storage beside a server that may be running on it (tmp/ is left alone). */
async function withAdmin<T>(config: Config, io: CommandIo, work: (admin: CacheAdmin) => Promise<T>): Promise<T> {
  const store = createBlobStore({ root: config.storage.root });
  await store.init({ purgeTemp: false });
  const index = createMetadataIndex({ path: path.join(store.root, 'index.db') }, { now: io.now });
  const keeper = createStorageKeeper(
    { maxBytes: config.storage.maxBytes, highWatermark: config.storage.highWatermark, lowWatermark: config.storage.lowWatermark, fillTimeoutMs: config.cache.fillTimeoutMs },
    { index, store, memory: createManifestCache({ maxBytes: 1 }), metrics: createMetrics({ withDefaultMetrics: false }), logger: createSilentLogger(), now: io.now },
  );
  try {
    return await work(createCacheAdmin({ index, store, keeper }));
  } finally {
    index.close();
  }
}

function imageArgument(positionals: readonly string[], command: string) {
  if (positionals.length !== 1) throw new UsageError(`${command} takes one image`);
  try {
    return parseImageReference(positionals[0]!);
  } catch (err) {
    throw new UsageError(`${JSON.stringify(positionals[0])} is not an image reference: ${(err as Error).message}`);
  }
}

/**
 * Without an index there is no cache: say where we looked instead of creating one there (a
 * mistyped `--config`, or none, would otherwise leave an empty `./storage` behind). Commands that
 * act on an image fail; the others report an empty cache.
 */
function reportNoCache(command: string, root: string, isJson: boolean, io: CommandIo): number {
  io.err.write(`pullthrough: no cache at ${root} (storage.root): nothing is cached there yet, or --config names another storage\n`);
  if (isJson && command === 'ls') io.out.write('[]\n');
  if (isJson && command === 'stats') io.out.write(`${JSON.stringify({ bytes: 0, objects: 0, images: 0, pinned: 0 })}\n`);
  return ['pin', 'unpin', 'rm'].includes(command) ? 1 : 0;
}

/** `ls`, `stats`, `pin`, `unpin`, `rm [--force]`, `gc` and `verify [--repair]`: the storage by hand. */
export async function runStorageCommand(command: string, argv: readonly string[], config: Config, io: CommandIo): Promise<number> {
  const { values, positionals } = parseArgs({
    args: [...argv],
    allowPositionals: true,
    options: { repair: { type: 'boolean' }, json: { type: 'boolean' }, force: { type: 'boolean' } },
  });
  const root = path.resolve(config.storage.root);
  if (!existsSync(path.join(root, 'index.db'))) return reportNoCache(command, root, values.json === true, io);
  return withAdmin(config, io, async (admin) => {
    switch (command) {
      case 'ls': {
        const rows = admin.list();
        if (values.json) {
          io.out.write(`${JSON.stringify(rows, null, 2)}\n`);
          return 0;
        }
        if (rows.length === 0) io.err.write(`no images cached in ${root}\n`);
        const width = Math.max(5, ...rows.map((r) => r.image.length));
        io.out.write(`${'IMAGE'.padEnd(width)}  ${'SIZE'.padStart(10)}  ${'PULLS'.padStart(6)}  LAST PULL     PINNED\n`);
        for (const r of rows) {
          io.out.write(`${r.image.padEnd(width)}  ${formatBytes(r.sizeBytes).padStart(10)}  ${String(r.pulls).padStart(6)}  ${formatAgo(r.lastPulledAt, io.now()).padEnd(12)}  ${r.isPinned ? 'yes' : ''}\n`);
        }
        return 0;
      }
      case 'stats': {
        const stats = admin.stats();
        const bound = config.storage.maxBytes > 0 ? ` of ${formatBytes(config.storage.maxBytes)} (${((stats.bytes / config.storage.maxBytes) * 100).toFixed(1)} %)` : ' (unbounded)';
        io.out.write(values.json ? `${JSON.stringify(stats)}\n` : `${root}: ${formatBytes(stats.bytes)}${bound} in ${stats.objects} objects; ${stats.images} tags, ${stats.pinned} pinned\n`);
        return 0;
      }
      case 'pin':
      case 'unpin': {
        const image = imageArgument(positionals, command);
        if (command === 'pin' && !admin.find(image)) {
          const name = formatImageReference(image);
          io.err.write(`${name} is not cached in ${root}, so nothing was pinned: \`pullthrough preload ${name}\` fetches it and pins it\n`);
          return 1;
        }
        if (command === 'pin') admin.pin(image);
        else if (!admin.unpin(image)) {
          io.out.write(`${formatImageReference(image)} was not pinned\n`);
          return 1;
        }
        io.out.write(`${command === 'pin' ? 'pinned' : 'unpinned'} ${formatImageReference(image)}\n`);
        return 0;
      }
      case 'rm': {
        const image = imageArgument(positionals, command);
        if (admin.find(image)?.isPinned && !values.force) {
          io.err.write(`${formatImageReference(image)} is pinned: unpin it first, or rm --force\n`);
          return 1;
        }
        const result = await admin.remove(image);
        if (!result.isFound) {
          io.out.write(`${formatImageReference(image)} is not in the cache\n`);
          return 1;
        }
        io.out.write(`removed ${formatImageReference(image)}: ${result.objects} objects, ${formatBytes(result.bytes)} freed\n`);
        return 0;
      }
      case 'gc': {
        // The owner's fills are in tmp/ and its own timer collects: two collectors would race.
        const owner = await readStorageOwner(path.resolve(config.storage.root));
        if (owner) {
          io.err.write(`a pullthrough (pid ${owner.pid}${owner.url ? `, ${owner.url}` : ''}) serves this storage and collects its garbage: use its admin API (POST /_pullthrough/admin/gc) or stop it first\n`);
          return 1;
        }
        const result = await admin.gc(GC_GRACE_MS);
        io.out.write(`removed ${result.blobs} unreferenced blobs, ${result.files} stray files, ${result.temp} dead temp files\n`);
        return 0;
      }
      case 'verify': {
        const report = await admin.verify({
          repair: values.repair === true,
          onProgress: (done, total) => {
            if (io.isInteractive) io.err.write(`\rverifying ${done}/${total}`);
          },
        });
        if (io.isInteractive) io.err.write('\n');
        for (const digest of report.missing) io.out.write(`missing: ${digest}\n`);
        for (const digest of report.corrupt) io.out.write(`corrupt: ${digest}\n`);
        const bad = report.missing.length + report.corrupt.length;
        io.out.write(`checked ${report.checked} objects in ${root}: ${bad === 0 ? 'all intact' : `${report.corrupt.length} corrupt, ${report.missing.length} missing${report.repaired ? '; dropped, they will be fetched again' : ' (run with --repair to drop them)'}`}\n`);
        return bad === 0 ? 0 : 1;
      }
      default:
        throw new UsageError(`unknown command ${JSON.stringify(command)}`);
    }
  });
}
