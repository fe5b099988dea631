import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { requireBinary, runCommand, startDaemon, waitUntil, type Daemon } from './processes.js';

/** A private policy, so the tests never depend on the machine's /etc/containers. */
async function policyFile(dir: string): Promise<string> {
  const file = path.join(dir, 'policy.json');
  await writeFile(file, JSON.stringify({ default: [{ type: 'insecureAcceptAnything' }] }));
  return file;
}

/** What `skopeo copy … dir:` wrote: file name (digest hex or manifest.json) → bytes. */
export async function readDirImage(dir: string): Promise<Map<string, Buffer>> {
  const files = new Map<string, Buffer>();
  for (const name of await readdir(dir)) files.set(name, await readFile(path.join(dir, name)));
  return files;
}

/**
 * `skopeo copy docker://<source> dir:<tmp>` (with `--all` for every platform of an index),
 * plain HTTP. With `registriesConf`, the source goes through that registries.conf's mirrors.
 */
export async function skopeoCopy(source: string, options: { all?: boolean; registriesConf?: string; tlsVerify?: boolean; certDir?: string; creds?: string } = {}): Promise<{ dir: string; files: Map<string, Buffer>; cleanup(): Promise<void> }> {
  await requireBinary('skopeo');
  const work = await mkdtemp(path.join(tmpdir(), 'pullthrough-skopeo-'));
  const dir = path.join(work, 'image');
  const args = ['--policy', await policyFile(work)];
  if (options.registriesConf) args.push('--registries-conf', options.registriesConf);
  args.push('copy', '--retry-times', '0');
  if (options.tlsVerify === false) args.push('--src-tls-verify=false');
  if (options.certDir) args.push('--src-cert-dir', options.certDir);
  if (options.creds) args.push('--src-creds', options.creds);
  if (options.all) args.push('--all');
  args.push(`docker://${source}`, `dir:${dir}`);
  const cleanup = () => rm(work, { recursive: true, force: true });
  try {
    await runCommand('skopeo', args, { timeoutMs: 180_000 });
  } catch (err) {
    // A refused pull (the tests expect many) leaves nothing behind in /tmp.
    await cleanup();
    throw err;
  }
  return { dir, files: await readDirImage(dir), cleanup };
}

export interface Containerd {
  readonly address: string;
  /** `ctr images pull` through `mirror` (`127.0.0.1:port`) for `registry`, via a hosts.toml. */
  pull(reference: string, options: { registry: string; mirror: string; platform?: string }): Promise<string>;
  ctr(args: readonly string[]): Promise<string>;
  stop(): Promise<void>;
}

/**
 * A private containerd daemon (its own root, state and socket under a temp dir, CRI off), as a
 * Kubernetes node runs it, driven with `ctr --hosts-dir` and a hosts.toml naming the mirror.
 */
export async function startContainerd(): Promise<Containerd> {
  await requireBinary('containerd');
  await requireBinary('ctr');
  const dir = await mkdtemp(path.join(tmpdir(), 'pullthrough-containerd-'));
  const address = path.join(dir, 'containerd.sock');
  const config = path.join(dir, 'config.toml');
  await writeFile(
    config,
    [
      'version = 2',
      `root = "${dir}/root"`,
      `state = "${dir}/state"`,
      'disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs"]',
      '[grpc]',
      `  address = "${address}"`,
      '[ttrpc]',
      `  address = "${address}.ttrpc"`,
      '[debug]',
      '  address = ""',
      '[metrics]',
      '  address = ""',
      '',
    ].join('\n'),
  );
  const daemon: Daemon = startDaemon('containerd', ['--config', config]);
  const ctr = async (args: readonly string[]) => (await runCommand('ctr', ['--address', address, ...args], { timeoutMs: 180_000 })).stdout;
  try {
    await waitUntil(async () => (await ctr(['version'])).includes('Server'), 'containerd to answer');
  } catch (err) {
    await daemon.stop();
    throw new Error(`${(err as Error).message}\n${daemon.output()}`);
  }
  return {
    address,
    ctr,
    async pull(reference, { registry, mirror, platform = 'linux/amd64' }) {
      const hostsDir = path.join(dir, 'certs.d');
      await mkdir(path.join(hostsDir, registry), { recursive: true });
      // The upstream itself is unreachable here, so a pull that succeeds went through the mirror.
      await writeFile(
        path.join(hostsDir, registry, 'hosts.toml'),
        `server = "http://127.0.0.1:9"\n\n[host."http://${mirror}"]\n  capabilities = ["pull", "resolve"]\n`,
      );
      return ctr(['images', 'pull', '--hosts-dir', hostsDir, '--platform', platform, '--snapshotter', 'native', reference]);
    },
    async stop() {
      await daemon.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
