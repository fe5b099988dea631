import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { requireBinary, runCommand } from './processes.js';

// Without the background-networking flags Chromium tries to reach Google's hosts at start-up.
const FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--hide-scrollbars',
];

/** Renders `url` in headless Chromium: the DOM after rendering, and a PNG screenshot at `screenshot`. */
export async function renderPage(url: string, screenshot: string): Promise<string> {
  await requireBinary('chromium');
  const profile = await mkdtemp(path.join(tmpdir(), 'pullthrough-chromium-'));
  try {
    const common = [...FLAGS, `--user-data-dir=${profile}`, '--window-size=1100,1000'];
    await runCommand('chromium', [...common, `--screenshot=${screenshot}`, url], { timeoutMs: 60_000 });
    return (await runCommand('chromium', [...common, '--dump-dom', url], { timeoutMs: 60_000 })).stdout;
  } finally {
    await rm(profile, { recursive: true, force: true });
  }
}
