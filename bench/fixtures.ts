/* What the benchmarks share: generated images and readings of a process's memory. */
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { OCI, sha256, type Blob, type ImageManifest } from '../test/helpers/images.js';

const MiB = 1024 * 1024;

/** An image of incompressible layers (raw random bytes: nothing to gain from compression). */
export function rawImage(layerMiB: readonly number[]): ImageManifest {
  return imageOf(
    layerMiB.map((size) => {
      const bytes = randomBytes(Math.round(size * MiB));
      return { bytes, digest: sha256(bytes), mediaType: 'application/vnd.oci.image.layer.v1.tar' };
    }),
  );
}

export function imageOf(layers: Blob[]): ImageManifest {
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: layers.map((l) => l.digest) } }));
  const configBlob = { bytes: config, digest: sha256(config), mediaType: OCI.config };
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI.manifest,
      config: { mediaType: OCI.config, digest: configBlob.digest, size: config.length },
      layers: layers.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.bytes.length })),
    }),
  );
  return { bytes: manifest, digest: sha256(manifest), mediaType: OCI.manifest, config: configBlob, layers, platform: { os: 'linux', architecture: 'amd64' } };
}

/** A process's peak RSS (VmHWM) in MiB; NaN when it cannot be read. */
export async function peakRssMiB(pid: number | undefined): Promise<number> {
  if (!pid) return NaN;
  const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
  return Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1] ?? NaN) / 1024;
}

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}
