import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startFakeUpstream, type FakeUpstream } from '../fakes/fake-upstream.js';
import { freePort, startDaemon, statusKb, waitUntil, type Daemon } from '../helpers/processes.js';


describe('memory under a token flood (server.tokenMemoryBytes)', { timeout: 180_000 }, () => {
  let root: string;
  let upstream: FakeUpstream;
  let daemon: Daemon | undefined;
  before(async () => {
    root = await mkdtemp(path.join(tmpdir(), 'pullthrough-token-flood-'));
    upstream = await startFakeUpstream();
  });
  after(async () => {
    await daemon?.stop();
    await upstream.close();
    await rm(root, { recursive: true, force: true });
  });

  it('holds 60,000 tokens with 2 KB passwords in a bounded store, and alice, who keeps using hers, keeps it', async (t) => {
    const port = await freePort();
    const config = path.join(root, 'config.yaml');
    // The per-address rate limit is lifted: the store's own bound is what is tested here.
    await writeFile(
      config,
      `listen: 127.0.0.1:${port}\nlogLevel: error\nstorage: { root: ${path.join(root, 'data')} }\nserver: { tokenBurst: 1000000, tokenRatePerSecond: 1000000 }\nupstreams:\n  - { host: docker.io, url: "${upstream.url}", default: true }\n`,
    );
    daemon = startDaemon(process.execPath, ['--max-semi-space-size=4', '--import', 'tsx', 'src/main.ts', 'serve', '--config', config]);
    const base = `http://127.0.0.1:${port}`;
    await waitUntil(async () => (await fetch(`${base}/healthz`)).ok, 'pullthrough to start');
    const pid = daemon.child.pid!;
    const token = async (user: string) => {
      const res = await fetch(`${base}/_pullthrough/token`, { headers: { authorization: `Basic ${Buffer.from(`${user}:${'p'.repeat(2048)}`).toString('base64')}` } });
      return ((await res.json()) as { token: string }).token;
    };
    const alice = await token('alice');
    const idle = await statusKb(pid, 'VmRSS');
    let sent = 0;
    const started = Date.now();
    const worker = async (w: number) => {
      while (sent < 60_000 && Date.now() - started < 120_000) {
        sent += 1;
        await token(`mallory-${w}-${sent}`);
        if (sent % 500 === 0) assert.equal((await fetch(`${base}/v2/`, { headers: { authorization: `Bearer ${alice}` } })).status, 200, `alice's token after ${sent}`);
      }
    };
    await Promise.all(Array.from({ length: 32 }, (_, w) => worker(w)));
    const peak = await statusKb(pid, 'VmHWM');
    const grownMiB = (peak - idle) / 1024;
    t.diagnostic(`${sent} tokens; RSS idle ${(idle / 1024).toFixed(0)} MiB, peak ${(peak / 1024).toFixed(0)} MiB`);
    assert.ok(sent >= 60_000, `only ${sent} tokens in the time`);
    assert.equal((await fetch(`${base}/v2/`, { headers: { authorization: `Bearer ${alice}` } })).status, 200);
    // 32 MiB of sessions plus the garbage of 60k requests; before the bound the process grew by 368 MiB here (a built server idles near 80 MiB).
    assert.ok(grownMiB <= 120, `RSS grew by ${grownMiB.toFixed(0)} MiB`);
  });
});
