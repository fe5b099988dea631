import { Agent, get } from 'node:http';

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
