import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { blobsOf, type Blob, type ImageIndex, type ImageManifest } from './images.js';
import { freePort, requireBinary, runCommand, startDaemon, waitUntil, type Daemon } from './processes.js';

export interface Distribution {
  /** `http://127.0.0.1:port` */
  readonly url: string;
  readonly port: number;
  /** The registry process, for resource readings. */
  readonly pid: number | undefined;
  /** For token auth: send this Authorization when pushing (a token with push rights). */
  setPushAuthorization(value: string): void;
  push(repository: string, tag: string, image: ImageManifest | ImageIndex): Promise<void>;
  /** With `accessLog`: every request answered so far, from the registry's own access log. */
  served(): readonly ServedRequest[];
  stop(): Promise<void>;
}

/** One line of distribution's access log (Apache combined format): what the registry itself sent. */
export interface ServedRequest {
  readonly method: string;
  readonly path: string;
  readonly status: number;
  /** Body bytes written, as the registry counted them. */
  readonly bytes: number;
}

const ACCESS_LINE = /"([A-Z]+) (\S+) HTTP\/[\d.]+" (\d{3}) (\d+|-)/;

/**
 * Starts Debian's `docker-registry` (CNCF distribution) on a free loopback port with its own
 * storage, as the real upstream of end-to-end tests.
 */
/** How the registry authenticates: not at all, htpasswd Basic, or distribution's `auth: token`. */
export type DistributionAuth =
  | { kind: 'htpasswd'; users: Record<string, string> }
  | { kind: 'token'; realm: string; service: string; issuer: string; rootCertBundle: string };

export async function startDistribution(options: { auth?: DistributionAuth; port?: number; storageDir?: string; proxyRemoteUrl?: string; accessLog?: boolean } = {}): Promise<Distribution> {
  await requireBinary('docker-registry');
  const dir = await mkdtemp(path.join(tmpdir(), 'pullthrough-distribution-'));
  const port = options.port ?? (await freePort());
  const configPath = path.join(dir, 'config.yml');
  const auth: string[] = [];
  // Pushes in tests go straight to the storage-backed API with these credentials.
  let pushAuthorization: string | undefined;
  if (options.auth?.kind === 'htpasswd') {
    await requireBinary('htpasswd');
    const lines: string[] = [];
    for (const [user, password] of Object.entries(options.auth.users)) {
      lines.push((await runCommand('htpasswd', ['-Bbn', user, password])).stdout.trim());
    }
    await writeFile(path.join(dir, 'htpasswd'), `${lines.join('\n')}\n`);
    auth.push(`auth: { htpasswd: { realm: test, path: ${path.join(dir, 'htpasswd')} } }`);
    const [user, password] = Object.entries(options.auth.users)[0]!;
    pushAuthorization = `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
  } else if (options.auth?.kind === 'token') {
    const a = options.auth;
    auth.push(`auth: { token: { realm: "${a.realm}", service: ${a.service}, issuer: ${a.issuer}, rootcertbundle: ${a.rootCertBundle} } }`);
  }
  await writeFile(
    configPath,
    [
      'version: 0.1',
      `log: { level: error, accesslog: { disabled: ${options.accessLog ? 'false' : 'true'} } }`,
      `storage: { filesystem: { rootdirectory: ${options.storageDir ?? path.join(dir, 'data')} }, delete: { enabled: true } }`,
      `http: { addr: "127.0.0.1:${port}" }`,
      ...auth,
      // distribution's own pull-through mode: the peer pullthrough is measured against.
      ...(options.proxyRemoteUrl ? [`proxy: { remoteurl: "${options.proxyRemoteUrl}" }`] : []),
      '',
    ].join('\n'),
  );
  const daemon: Daemon = startDaemon('docker-registry', ['serve', configPath]);
  const served: ServedRequest[] = [];
  if (options.accessLog && daemon.child.stdout) {
    // Counting what the upstream itself sent needs no proxy in the data path (and no CPU of ours on it).
    createInterface({ input: daemon.child.stdout }).on('line', (line) => {
      const match = ACCESS_LINE.exec(line);
      if (match) served.push({ method: match[1]!, path: match[2]!.split('?')[0]!, status: Number(match[3]), bytes: match[4] === '-' ? 0 : Number(match[4]) });
    });
  }
  const url = `http://127.0.0.1:${port}`;
  try {
    await waitUntil(async () => [200, 401].includes((await fetch(`${url}/v2/`)).status), 'docker-registry to answer');
  } catch (err) {
    await daemon.stop();
    throw new Error(`${(err as Error).message}\n${daemon.output()}`);
  }

  const authHeaders = (): Record<string, string> => (pushAuthorization ? { authorization: pushAuthorization } : {});

  async function pushBlob(repository: string, blob: Blob): Promise<void> {
    const start = await fetch(`${url}/v2/${repository}/blobs/uploads/`, { method: 'POST', headers: authHeaders() });
    if (start.status !== 202) throw new Error(`starting an upload to ${repository}: ${start.status} ${await start.text()}`);
    await start.arrayBuffer();
    const location = new URL(start.headers.get('location') ?? '', url);
    location.searchParams.set('digest', blob.digest);
    const put = await fetch(location, { method: 'PUT', body: blob.bytes, headers: { 'content-type': 'application/octet-stream', ...authHeaders() } });
    if (put.status !== 201) throw new Error(`pushing ${blob.digest}: ${put.status} ${await put.text()}`);
  }

  async function pushManifest(repository: string, reference: string, manifest: Blob): Promise<void> {
    const put = await fetch(`${url}/v2/${repository}/manifests/${reference}`, { method: 'PUT', body: manifest.bytes, headers: { 'content-type': manifest.mediaType, ...authHeaders() } });
    if (put.status !== 201) throw new Error(`pushing manifest ${reference}: ${put.status} ${await put.text()}`);
  }

  return {
    url,
    port,
    pid: daemon.child.pid,
    served: () => served,
    setPushAuthorization(value) {
      pushAuthorization = value;
    },
    async push(repository, tag, image) {
      for (const blob of blobsOf(image)) await pushBlob(repository, blob);
      if ('images' in image) for (const child of image.images) await pushManifest(repository, child.digest, child);
      await pushManifest(repository, tag, image);
    },
    async stop() {
      await daemon.stop();
      if (!options.storageDir) await rm(dir, { recursive: true, force: true });
    },
  };
}
