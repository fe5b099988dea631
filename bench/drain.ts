import { execFile } from 'node:child_process';
import { Agent, get } from 'node:http';
import { promisify } from 'node:util';

const agent = new Agent({ keepAlive: true, maxSockets: 1024 });

/**
 * GETs a URL over node:http and counts the body without keeping it: the cheapest client Node has
 * (fetch's web streams cost the client several times the CPU), so on two cores the figures say
 * more about the server than about the load generator.
 */
export function drain(url: string): Promise<{ ttfbMs: number; bytes: number; status: number }> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    get(url, { agent }, (response) => {
      let ttfbMs = NaN;
      let bytes = 0;
      response.on('data', (chunk: Buffer) => {
        if (bytes === 0) ttfbMs = performance.now() - started;
        bytes += chunk.length;
      });
      response.on('end', () => {
        const status = response.statusCode ?? 0;
        if (status >= 400) reject(new Error(`${url}: ${status}`));
        else resolve({ ttfbMs, bytes, status });
      });
      response.on('error', reject);
    }).on('error', reject);
  });
}

export function closeDrainAgent(): void {
  agent.destroy();
}

/** `clients` concurrent drains of `url`, run and timed in a child process of its own (bench/drain-child.ts). */
export async function drainInChild(url: string, clients: number): Promise<{ seconds: number; bytes: number }> {
  const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', 'bench/drain-child.ts', url, String(clients)], { timeout: 300_000 });
  return JSON.parse(stdout) as { seconds: number; bytes: number };
}
