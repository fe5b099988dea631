import { readFile } from 'node:fs/promises';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** Debian package that provides each binary the end-to-end tests run. */
export const PACKAGES: Readonly<Record<string, string>> = {
  'docker-registry': 'docker-registry',
  skopeo: 'skopeo',
  containerd: 'containerd',
  ctr: 'containerd',
  openssl: 'openssl',
  chromium: 'chromium',
  'docker-compose': 'docker-compose',
  htpasswd: 'apache2-utils',
  docker: 'docker.io',
  dockerd: 'docker.io',
  podman: 'podman',
};

/**
 * Fails with the package to install when a binary is missing. Never a skip: an end-to-end test
 * that silently does not run would pass in CI without testing anything. `npm test` installs
 * them first where it can (test/run.sh).
 */
export async function requireBinary(name: string): Promise<void> {
  try {
    await run('sh', ['-c', `command -v ${name}`]);
  } catch {
    throw new Error(`${name} is not installed: apt-get install -y ${PACKAGES[name] ?? name} (npm test does this when run as root)`);
  }
}

/** A TCP port on loopback that was free a moment ago. */
export async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** Polls until `check` holds, failing after `limitMs` with what was awaited. */
export async function waitUntil(check: () => Promise<boolean>, what: string, limitMs = 20_000): Promise<void> {
  const deadline = Date.now() + limitMs;
  while (!(await check().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`timed out after ${limitMs} ms waiting for ${what}`);
    await sleep(50);
  }
}

export interface Daemon {
  readonly child: ChildProcess;
  /** Output so far, for failure messages. */
  output(): string;
  stop(): Promise<void>;
}

/** Spawns a long-running process whose output is kept for diagnostics; `stop` sends SIGTERM, then SIGKILL. */
export function startDaemon(command: string, args: readonly string[], env: NodeJS.ProcessEnv = process.env): Daemon {
  const child = spawn(command, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const keep = (chunk: Buffer) => {
    output = (output + chunk.toString()).slice(-20_000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  return {
    child,
    output: () => output,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const exited = once(child, 'exit');
      const timer = sleep(5_000).then(() => child.kill('SIGKILL'));
      await Promise.race([exited, timer]);
      if (child.exitCode === null && child.signalCode === null) await exited;
    },
  };
}

/** Runs a command to completion; rejects with its output on a non-zero exit. */
export async function runCommand(command: string, args: readonly string[], options: { timeoutMs?: number; cwd?: string } = {}): Promise<{ stdout: string; stderr: string }> {
  try {
    return await run(command, [...args], { timeout: options.timeoutMs ?? 120_000, maxBuffer: 32 * 1024 * 1024, ...(options.cwd && { cwd: options.cwd }) });
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; message: string };
    throw new Error(`${command} ${args.join(' ')} failed: ${e.message}\n${e.stdout ?? ''}\n${e.stderr ?? ''}`);
  }
}

/** Kilobytes of one `Vm*` line of /proc/<pid>/status (RSS now, or its high-water mark). */
export async function statusKb(pid: number, field: 'VmRSS' | 'VmHWM'): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
}
