import { createHash, randomBytes } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { tarHeader } from '../../src/bundle/tar.js';

/** Test content built here, so every test knows the exact bytes and digests it expects back. */

export const OCI = {
  manifest: 'application/vnd.oci.image.manifest.v1+json',
  index: 'application/vnd.oci.image.index.v1+json',
  config: 'application/vnd.oci.image.config.v1+json',
  layer: 'application/vnd.oci.image.layer.v1.tar+gzip',
} as const;

export const DOCKER = {
  manifest: 'application/vnd.docker.distribution.manifest.v2+json',
  list: 'application/vnd.docker.distribution.manifest.list.v2+json',
  config: 'application/vnd.docker.container.image.v1+json',
  layer: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
} as const;

export function sha256(bytes: Uint8Array): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

export interface Blob {
  readonly digest: string;
  readonly bytes: Buffer;
  readonly mediaType: string;
}

export interface ImageManifest extends Blob {
  readonly config: Blob;
  readonly layers: readonly Blob[];
  readonly platform: { os: string; architecture: string };
}

export interface ImageIndex extends Blob {
  readonly images: readonly ImageManifest[];
}

function blob(bytes: Buffer, mediaType: string): Blob {
  return { digest: sha256(bytes), bytes, mediaType };
}

/** A gzipped tar with one file of `size` random bytes: a real layer that containerd can unpack. */
export function makeLayer(name: string, size: number, mediaType: string = OCI.layer): Blob & { diffId: string } {
  const content = randomBytes(size);
  const padding = Buffer.alloc((512 - (size % 512)) % 512);
  const tar = Buffer.concat([tarHeader(name, size), content, padding, Buffer.alloc(1024)]);
  return { ...blob(gzipSync(tar, { level: 1 }), mediaType), diffId: sha256(tar) };
}

/** Random bytes under a blob media type, for tests that only move bytes. */
export function makeRawBlob(size: number, mediaType = 'application/octet-stream'): Blob {
  return blob(randomBytes(size), mediaType);
}

export function makeImage(options: {
  layerSizes: readonly number[];
  format?: 'oci' | 'docker';
  platform?: { os: string; architecture: string };
}): ImageManifest {
  const types = options.format === 'docker' ? DOCKER : OCI;
  const platform = options.platform ?? { os: 'linux', architecture: 'amd64' };
  const layers = options.layerSizes.map((size, i) => makeLayer(`file-${i}-${randomBytes(4).toString('hex')}`, size, types.layer));
  // A unique config per image, so two images with equal layer sizes never share a digest.
  const created = new Date(Date.UTC(2024, 0, 1) + Math.floor(Math.random() * 1e9)).toISOString();
  const configJson = {
    architecture: platform.architecture,
    os: platform.os,
    created,
    config: { Cmd: ['/file-0'] },
    rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) },
  };
  const config = blob(Buffer.from(JSON.stringify(configJson)), types.config);
  const manifestJson = {
    schemaVersion: 2,
    mediaType: types.manifest,
    config: { mediaType: config.mediaType, digest: config.digest, size: config.bytes.length },
    layers: layers.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.bytes.length })),
  };
  return { ...blob(Buffer.from(JSON.stringify(manifestJson, null, 2)), types.manifest), config, layers, platform };
}

export function makeIndex(images: readonly ImageManifest[], format: 'oci' | 'docker' = 'oci'): ImageIndex {
  const mediaType = format === 'docker' ? DOCKER.list : OCI.index;
  const json = {
    schemaVersion: 2,
    mediaType,
    manifests: images.map((m) => ({ mediaType: m.mediaType, digest: m.digest, size: m.bytes.length, platform: m.platform })),
  };
  return { ...blob(Buffer.from(JSON.stringify(json, null, 2)), mediaType), images };
}

/** Every blob (config and layers) of an image or index, without duplicates. */
export function blobsOf(image: ImageManifest | ImageIndex): Blob[] {
  const images = 'images' in image ? image.images : [image];
  const all = images.flatMap((m) => [m.config, ...m.layers]);
  return [...new Map(all.map((b) => [b.digest, b])).values()];
}

/** The empty JSON blob artifacts use as their config (image-spec "Guidance for an Empty Descriptor"). */
export const EMPTY_JSON: Blob = blob(Buffer.from('{}'), 'application/vnd.oci.empty.v1+json');

/**
 * A signature- or SBOM-like artifact (image-spec v1.1): an image manifest with `artifactType`,
 * the empty config, one payload layer, and a `subject` pointing at the manifest it is about.
 */
export function makeArtifact(options: { subject: Blob; artifactType: string; annotations?: Record<string, string>; payload?: string }): ImageManifest {
  const payload = blob(Buffer.from(options.payload ?? `payload ${randomBytes(8).toString('hex')}`), 'application/octet-stream');
  const json = {
    schemaVersion: 2,
    mediaType: OCI.manifest,
    artifactType: options.artifactType,
    config: { mediaType: EMPTY_JSON.mediaType, digest: EMPTY_JSON.digest, size: EMPTY_JSON.bytes.length },
    layers: [{ mediaType: payload.mediaType, digest: payload.digest, size: payload.bytes.length }],
    subject: { mediaType: options.subject.mediaType, digest: options.subject.digest, size: options.subject.bytes.length },
    ...(options.annotations && { annotations: options.annotations }),
  };
  return { ...blob(Buffer.from(JSON.stringify(json)), OCI.manifest), config: EMPTY_JSON, layers: [payload], platform: { os: 'unknown', architecture: 'unknown' } };
}

/**
 * The index a client without the referrers API pushes under the fallback tag `sha256-<hex>`
 * (distribution-spec "Referrers Tag Schema"): each artifact with its artifactType and annotations.
 */
export function makeFallbackIndex(artifacts: readonly ImageManifest[]): ImageIndex {
  const manifests = artifacts.map((a) => {
    const body = JSON.parse(a.bytes.toString()) as { artifactType?: string; annotations?: Record<string, string> };
    return { mediaType: a.mediaType, digest: a.digest, size: a.bytes.length, artifactType: body.artifactType, ...(body.annotations && { annotations: body.annotations }) };
  });
  const json = { schemaVersion: 2, mediaType: OCI.index, manifests };
  return { ...blob(Buffer.from(JSON.stringify(json)), OCI.index), images: artifacts };
}

/** The fallback tag of a digest: `sha256-<hex>`. */
export function fallbackTagOf(digest: string): string {
  return digest.replace(':', '-');
}
