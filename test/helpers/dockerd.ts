import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startContainerd, type Containerd } from './clients.js';
import { requireBinary, runCommand, startDaemon, waitUntil, type Daemon } from './processes.js';

/** What `docker image inspect` says of a pulled image. */
export interface DockerImage {
  /** `sha256:…` of the image config. */
  readonly id: string;
  /** `<name>@sha256:…`: the manifest (or manifest list) digest the pull resolved. */
  readonly repoDigests: readonly string[];
}

export interface Dockerd {
  /** `docker pull <reference>`; rejects with dockerd's answer when the pull fails. */
  pull(reference: string): Promise<string>;
  inspect(reference: string): Promise<DockerImage>;
  /** `docker rmi`: the next pull has to fetch every layer again. */
  removeImage(reference: string): Promise<void>;
  /** dockerd's log so far, for failure messages. */
  output(): string;
  /** Stops dockerd, then its containerd, and removes every file of both. */
  stop(): Promise<void>;
}

const COMMAND_TIMEOUT_MS = 180_000;

/**
 * A private dockerd: its own daemon.json (`daemonJson`, the text of the file), data root, exec
 * root, pid file and socket under a temp dir, and its own containerd (so nothing of a system
 * Docker is used or touched). Networking that would change the host is off: no iptables, no
 * bridge, no IP forwarding. The vfs storage driver needs no kernel feature beyond root.
 */
export async function startDockerd(options: { daemonJson: string }): Promise<Dockerd> {
  await requireBinary('dockerd');
  await requireBinary('docker');
  const dir = await mkdtemp(path.join(tmpdir(), 'pullthrough-dockerd-'));
  const socket = `unix://${path.join(dir, 'docker.sock')}`;
  const configFile = path.join(dir, 'daemon.json');
  // The CLI's own config dir: no credentials or context of the machine's user reach the test.
  const clientConfig = path.join(dir, 'client');
  await mkdir(clientConfig);
  await writeFile(configFile, options.daemonJson);

  let containerd: Containerd | undefined;
  let daemon: Daemon | undefined;
  const stop = async () => {
    await daemon?.stop();
    await containerd?.stop();
    await rm(dir, { recursive: true, force: true });
  };
  const docker = async (args: readonly string[]) =>
    (await runCommand('docker', ['--config', clientConfig, '-H', socket, ...args], { timeoutMs: COMMAND_TIMEOUT_MS })).stdout;

  try {
    containerd = await startContainerd();
    daemon = startDaemon('dockerd', [
      '--config-file', configFile,
      '--containerd', containerd.address,
      '--data-root', path.join(dir, 'data'),
      '--exec-root', path.join(dir, 'exec'),
      '--pidfile', path.join(dir, 'docker.pid'),
      '-H', socket,
      '--storage-driver', 'vfs',
      '--iptables=false',
      '--ip-forward=false',
      '--ip-masq=false',
      '--bridge=none',
      '--userland-proxy=false',
    ]);
    const started = daemon;
    await waitUntil(async () => {
      if (started.child.exitCode !== null) throw new Error('dockerd exited');
      return (await docker(['version', '--format', '{{.Server.Version}}'])).trim().length > 0;
    }, 'dockerd to answer', 60_000);
  } catch (err) {
    const output = daemon?.output() ?? '';
    await stop();
    throw new Error(`${(err as Error).message}\n${output}`);
  }
  const running = daemon;

  return {
    pull: (reference) => docker(['pull', reference]),
    async inspect(reference) {
      const [image] = JSON.parse(await docker(['image', 'inspect', reference])) as Array<{ Id: string; RepoDigests: string[] }>;
      if (!image) throw new Error(`docker image inspect ${reference} returned nothing`);
      return { id: image.Id, repoDigests: image.RepoDigests };
    },
    async removeImage(reference) {
      await docker(['rmi', reference]);
    },
    output: () => running.output(),
    stop,
  };
}
