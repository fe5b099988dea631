import { digestOf } from '../oci/digest.js';
import { readFile } from 'node:fs/promises';
import { parseImageReference, type ImageReference } from '../oci/image-reference.js';
import type { Descriptor } from '../oci/manifest.js';
import { MEDIA_TYPES } from '../oci/media-types.js';
import type { ImportedImage, StagedFile } from './import-bundle.js';
import { ImportError } from './import-error.js';

const CONFIG_TYPE = 'application/vnd.docker.container.image.v1+json';
/** docker save keeps layers uncompressed; their digest is then their diff_id. */
const UNCOMPRESSED_LAYER_TYPE = 'application/vnd.docker.image.rootfs.diff.tar';

interface SaveEntry {
  Config?: unknown;
  RepoTags?: unknown;
  Layers?: unknown;
}

/**
 * Turns a classic `docker save` archive (manifest.json + <config>.json + <id>/layer.tar) into
 * images: a docker v2 schema 2 manifest is made for each, naming the config and the
 * uncompressed layers by their sha256. Each layer must hash to the diff_id its config declares:
 * that is the archive's own integrity check, and a tampered layer fails it.
 */
export async function legacyDockerImages(manifest: unknown, byName: ReadonlyMap<string, StagedFile>): Promise<ImportedImage[]> {
  if (!Array.isArray(manifest)) throw new ImportError('manifest.json is not a docker save manifest');
  const images: ImportedImage[] = [];
  for (const entry of manifest as SaveEntry[]) {
    const configName = typeof entry.Config === 'string' ? entry.Config : '';
    const config = byName.get(configName);
    if (!config) throw new ImportError(`docker save archive: config ${JSON.stringify(configName)} is missing`);
    const layerNames = Array.isArray(entry.Layers) ? entry.Layers.filter((l): l is string => typeof l === 'string') : [];
    const layers = layerNames.map((name) => {
      const file = byName.get(name);
      if (!file) throw new ImportError(`docker save archive: layer ${name} is missing`);
      return file;
    });
    const configJson = JSON.parse((await readFile(config.tempPath)).toString()) as { rootfs?: { diff_ids?: unknown } };
    const diffIds = Array.isArray(configJson.rootfs?.diff_ids) ? configJson.rootfs.diff_ids : [];
    if (diffIds.length !== layers.length || layers.some((layer, i) => layer.digest !== diffIds[i])) {
      throw new ImportError(`the archive is damaged or was tampered with: the layers of ${configName} do not hash to the diff_ids in its config; nothing was imported`);
    }
    const configDescriptor: Descriptor = { mediaType: CONFIG_TYPE, digest: config.digest, size: config.size };
    const layerDescriptors: Descriptor[] = layers.map((l) => ({ mediaType: UNCOMPRESSED_LAYER_TYPE, digest: l.digest, size: l.size }));
    const bytes = Buffer.from(
      JSON.stringify({ schemaVersion: 2, mediaType: MEDIA_TYPES.dockerManifest, config: configDescriptor, layers: layerDescriptors }, null, 3),
    );
    const digest = digestOf(bytes);
    const root: Descriptor = { mediaType: MEDIA_TYPES.dockerManifest, digest, size: bytes.length };
    const tags = Array.isArray(entry.RepoTags) ? entry.RepoTags.filter((t): t is string => typeof t === 'string') : [];
    if (tags.length === 0) throw new ImportError(`docker save archive: image ${configName} has no RepoTags, so there is no name to serve it under`);
    for (const tag of tags) {
      let reference: ImageReference;
      try {
        reference = parseImageReference(tag);
      } catch (err) {
        throw new ImportError(`docker save archive: ${JSON.stringify(tag)} is not an image name: ${(err as Error).message}`);
      }
      images.push({
        reference,
        root,
        manifests: [{ ...root, bytes, children: [config.digest, ...layers.map((l) => l.digest)] }],
        blobs: [configDescriptor, ...layerDescriptors],
      });
    }
  }
  return images;
}
