import { execFile } from 'node:child_process';
import path from 'node:path';

const MAIN = path.resolve('src/main.ts');
/** Absolute, so that the CLI also starts from a working directory without node_modules. */
const TSX = import.meta.resolve('tsx');

/**
 * Runs the pullthrough CLI from source, as a user would run it; never throws on a non-zero exit.
 * `cwd` runs it elsewhere (relative storage roots resolve there); `env` replaces the environment.
 */
export function runCli(
  args: readonly string[],
  options: { timeoutMs?: number; cwd?: string; env?: NodeJS.ProcessEnv } = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--import', TSX, MAIN, ...args],
      { timeout: options.timeoutMs ?? 180_000, maxBuffer: 16 * 1024 * 1024, ...(options.cwd && { cwd: options.cwd }), ...(options.env && { env: options.env }) },
      (err, stdout, stderr) => {
        const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}
