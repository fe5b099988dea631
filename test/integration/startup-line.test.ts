import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import { createApp } from '../../src/app.js';
import { parseConfig } from '../../src/config/load-config.js';
import { createLogger } from '../../src/logger.js';

/** Starts and stops an instance, returning its start-up log line. */
async function startupLine(document: Record<string, unknown>): Promise<{ msg: string; offline?: unknown; upstreams: string[] }> {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      lines.push(...chunk.toString().split('\n').filter(Boolean));
      callback();
    },
  });
  const root = await mkdtemp(path.join(tmpdir(), 'pullthrough-startup-'));
  try {
    const config = parseConfig({ listen: '127.0.0.1:0', storage: { root }, ...document }, {}, 'test');
    const app = await createApp(config, { logger: createLogger('info', sink), withDefaultMetrics: false });
    await app.listen();
    await app.close({ graceMs: 1_000 });
  } finally {
    await rm(root, { recursive: true, force: true });
  }
  const line = lines.map((l) => JSON.parse(l) as { msg: string; offline?: unknown; upstreams: string[] }).find((l) => l.msg.startsWith('pullthrough listening'));
  assert.ok(line, lines.join('\n'));
  return line;
}

describe('the start-up line', () => {
  const upstreams = [
    { host: 'docker.io', url: 'https://registry-1.docker.io', default: true },
    { host: 'ghcr.io', url: 'https://ghcr.io' },
  ];

  it('says when the instance is offline', async () => {
    const line = await startupLine({ offline: true, upstreams });
    assert.match(line.msg, /offline/);
    assert.equal(line.offline, true);
  });

  it('names the upstreams that are offline on their own', async () => {
    const line = await startupLine({ upstreams: [upstreams[0], { ...upstreams[1], offline: true }] });
    assert.deepEqual(line.offline, ['ghcr.io']);
    assert.ok(line.upstreams.includes('ghcr.io=offline'), line.upstreams.join(', '));
  });

  it('says nothing of offline for an online instance', async () => {
    const line = await startupLine({ upstreams });
    assert.doesNotMatch(line.msg, /offline/);
    assert.equal(line.offline, undefined);
  });
});
