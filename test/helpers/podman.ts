import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { requireBinary } from './processes.js';

const run = promisify(execFile);

/** What `podman image inspect` says of a pulled image. */
export interface PodmanImage {
  /** Hex of the image config digest (podman's image ID). */
  readonly id: string;
  /** The digest of what the pulled tag names (the index for a multi-arch image). */
  readonly digest: string;
  /** `docker.io/<name>@sha256:…` */
  readonly repoDigests: readonly string[];
}

export interface Podman {
  /** `podman pull` into an empty store; resolves with the pulled image, then drops that store. */
  pull(reference: string): Promise<PodmanImage>;
  /** Removes the configuration and any store left behind. */
  cleanup(): Promise<void>;
}

const COMMAND_TIMEOUT_MS = 180_000;

/**
 * podman as root with its own storage (vfs: no overlay mounts), run root, tmp dir and
 * containers.conf, no systemd (cgroupfs, events to a file), resolving names through
 * `registriesConf` (the text of a registries.conf) and an accept-anything signature policy.
 */
export async function createPodman(options: { registriesConf: string }): Promise<Podman> {
  await requireBinary('podman');
  const dir = await mkdtemp(path.join(tmpdir(), 'pullthrough-podman-'));
  const registriesConf = path.join(dir, 'registries.conf');
  const containersConf = path.join(dir, 'containers.conf');
  const policy = path.join(dir, 'policy.json');
  await writeFile(registriesConf, options.registriesConf);
  // An empty containers.conf: the machine's /etc/containers/containers.conf plays no part.
  await writeFile(containersConf, '');
  await writeFile(policy, JSON.stringify({ default: [{ type: 'insecureAcceptAnything' }] }));
  const env = { ...process.env, CONTAINERS_REGISTRIES_CONF: registriesConf, CONTAINERS_CONF: containersConf };
  let stores = 0;

  async function podman(store: string, args: readonly string[]): Promise<string> {
    const global = [
      '--root', path.join(store, 'root'),
      '--runroot', path.join(store, 'run'),
      '--tmpdir', path.join(store, 'tmp'),
      '--storage-driver', 'vfs',
      '--cgroup-manager', 'cgroupfs',
      '--events-backend', 'file',
      // netavark's config otherwise goes to /run/containers/networks.
      '--network-config-dir', path.join(store, 'networks'),
    ];
    try {
      const { stdout } = await run('podman', [...global, ...args], { env, timeout: COMMAND_TIMEOUT_MS, killSignal: 'SIGKILL', maxBuffer: 32 * 1024 * 1024 });
      return stdout;
    } catch (err) {
      const e = err as { stdout?: string; stderr?: string; message: string };
      throw new Error(`podman ${args.join(' ')} failed: ${e.message}\n${e.stdout ?? ''}\n${e.stderr ?? ''}`);
    }
  }

  return {
    async pull(reference) {
      const store = path.join(dir, `store-${stores++}`);
      try {
        await podman(store, ['pull', '--signature-policy', policy, reference]);
        const [image] = JSON.parse(await podman(store, ['image', 'inspect', reference])) as Array<{ Id: string; Digest: string; RepoDigests: string[] }>;
        if (!image) throw new Error(`podman image inspect ${reference} returned nothing`);
        return { id: image.Id, digest: image.Digest, repoDigests: image.RepoDigests };
      } finally {
        await rm(store, { recursive: true, force: true });
      }
    },
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
}
