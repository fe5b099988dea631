import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Logger } from '../../src/logger.js';
import { createMetrics } from '../../src/metrics.js';
import { createUpstream } from '../../src/upstream/upstream-client.js';
import { startFakeUpstream, type FakeUpstream } from '../fakes/fake-upstream.js';
import { makeRawBlob } from '../helpers/images.js';

interface Entry {
  level: 'debug' | 'info' | 'warn' | 'error';
  fields: Record<string, unknown>;
  message: string;
}

function recordingLogger(entries: Entry[]): Logger {
  const log = (level: Entry['level']) => (fields: object, message: string) => void entries.push({ level, fields: fields as Record<string, unknown>, message });
  const logger: Logger = { debug: log('debug'), info: log('info'), warn: log('warn'), error: log('error'), child: () => logger };
  return logger;
}

describe('upstream failures in the log', () => {
  let fake: FakeUpstream;
  const blob = makeRawBlob(100);
  before(async () => {
    fake = await startFakeUpstream();
    fake.addBlob(blob);
  });
  after(async () => {
    await fake.close();
  });

  it('warns once when an upstream starts failing, naming the cause; the breaker warning names it too; recovery once', async () => {
    const entries: Entry[] = [];
    const upstream = createUpstream(
      { host: 'docker.io', url: 'http://127.0.0.1:1', isUrlTrusted: true, allowOrigins: [], allowPrivate: [], userAgent: 'test', timeouts: { connectMs: 2_000, headersMs: 2_000, bodyIdleMs: 2_000, totalMs: 10_000 }, breaker: { failures: 3, openForMs: 60_000 } },
      { metrics: createMetrics({ withDefaultMetrics: false }), logger: recordingLogger(entries), now: Date.now },
    );
    try {
      for (let i = 0; i < 5; i++) await assert.rejects(upstream.headBlob('library/app', blob.digest));
      const warnings = entries.filter((e) => e.level === 'warn');
      assert.equal(warnings.length, 2, JSON.stringify(warnings));
      assert.match(warnings[0]!.message, /ECONNREFUSED/);
      assert.equal(warnings[0]!.fields['upstream'], 'docker.io');
      assert.match(warnings[1]!.message, /breaker open/);
      assert.match(warnings[1]!.message, /ECONNREFUSED/, 'the breaker warning names the underlying error');
    } finally {
      await upstream.close();
    }
  });

  it('says once that a failing upstream answers again', async () => {
    const entries: Entry[] = [];
    const upstream = createUpstream(
      { host: 'docker.io', url: fake.url, isUrlTrusted: true, allowOrigins: [], allowPrivate: [], userAgent: 'test', timeouts: { connectMs: 2_000, headersMs: 2_000, bodyIdleMs: 2_000, totalMs: 10_000 }, breaker: { failures: 5, openForMs: 60_000 } },
      { metrics: createMetrics({ withDefaultMetrics: false }), logger: recordingLogger(entries), now: Date.now },
    );
    try {
      fake.setFault(blob.digest, { type: 'status', status: 503 });
      for (let i = 0; i < 2; i++) await assert.rejects(upstream.headBlob('library/app', blob.digest));
      fake.setFault(blob.digest, undefined);
      for (let i = 0; i < 2; i++) await upstream.headBlob('library/app', blob.digest);
      const lines = entries.filter((e) => e.level !== 'debug').map((e) => `${e.level}: ${e.message}`);
      assert.equal(lines.length, 2, lines.join('\n'));
      assert.match(lines[0]!, /^warn: .*HTTP 503/);
      assert.match(lines[1]!, /^info: .*again/);
    } finally {
      await upstream.close();
    }
  });
});
