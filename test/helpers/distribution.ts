import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { blobsOf, type Blob, type ImageIndex, type ImageManifest } from './images.js';
import { freePort, requireBinary, startDaemon, waitUntil, type Daemon } from './processes.js';

export interface Distribution {
  /** `http://127.0.0.1:port` */
  readonly url: string;
  push(repository: string, tag: string, image: ImageManifest | ImageIndex): Promise<void>;
  stop(): Promise<void>;
}

/**
 * Starts Debian's `docker-registry` (CNCF distribution) on a free loopback port with its own
 * storage, as the real upstream of end-to-end tests.
 */
export async function startDistribution(): Promise<Distribution> {
  await requireBinary('docker-registry');
  const dir = await mkdtemp(path.join(tmpdir(), 'pullthrough-distribution-'));
  const port = await freePort();
  const configPath = path.join(dir, 'config.yml');
  await writeFile(
    configPath,
    [
      'version: 0.1',
      'log: { level: error, accesslog: { disabled: true } }',
      `storage: { filesystem: { rootdirectory: ${path.join(dir, 'data')} }, delete: { enabled: true } }`,
      `http: { addr: "127.0.0.1:${port}" }`,
      '',
    ].join('\n'),
  );
  const daemon: Daemon = startDaemon('docker-registry', ['serve', configPath]);
  const url = `http://127.0.0.1:${port}`;
  try {
    await waitUntil(async () => (await fetch(`${url}/v2/`)).status === 200, 'docker-registry to answer');
  } catch (err) {
    await daemon.stop();
    throw new Error(`${(err as Error).message}\n${daemon.output()}`);
  }

  async function pushBlob(repository: string, blob: Blob): Promise<void> {
    const start = await fetch(`${url}/v2/${repository}/blobs/uploads/`, { method: 'POST' });
    await start.arrayBuffer();
    const location = new URL(start.headers.get('location') ?? '', url);
    location.searchParams.set('digest', blob.digest);
    const put = await fetch(location, { method: 'PUT', body: blob.bytes, headers: { 'content-type': 'application/octet-stream' } });
    if (put.status !== 201) throw new Error(`pushing ${blob.digest}: ${put.status} ${await put.text()}`);
  }

  async function pushManifest(repository: string, reference: string, manifest: Blob): Promise<void> {
    const put = await fetch(`${url}/v2/${repository}/manifests/${reference}`, { method: 'PUT', body: manifest.bytes, headers: { 'content-type': manifest.mediaType } });
    if (put.status !== 201) throw new Error(`pushing manifest ${reference}: ${put.status} ${await put.text()}`);
  }

  return {
    url,
    async push(repository, tag, image) {
      for (const blob of blobsOf(image)) await pushBlob(repository, blob);
      if ('images' in image) for (const child of image.images) await pushManifest(repository, child.digest, child);
      await pushManifest(repository, tag, image);
    },
    async stop() {
      await daemon.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
