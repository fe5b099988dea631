import assert from 'node:assert/strict';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { parse as parseYaml } from 'yaml';
import { ConfigError, formatConfig, loadConfig, parseConfig } from '../../../src/config/load-config.js';
import { formatAgo, formatDurationMs, formatSizeBytes, parseDurationMs, parseListenAddress, parseSizeBytes } from '../../../src/config/units.js';

const minimal = { upstreams: [{ host: 'docker.io', url: 'https://registry-1.docker.io', default: true }] };

function problems(doc: unknown, env: Record<string, string> = {}): readonly string[] {
  try {
    parseConfig(doc, env, 'test');
  } catch (err) {
    assert.ok(err instanceof ConfigError);
    return err.problems;
  }
  assert.fail('expected a ConfigError');
}

describe('config', () => {
  it('fills defaults and freezes the result', () => {
    const config = parseConfig(minimal, {}, 'test');
    assert.equal(config.listen, '127.0.0.1:5000');
    assert.equal(config.storage.root, './storage');
    assert.equal(config.cache.maxManifestBytes, 4 * 1024 * 1024);
    assert.equal(config.cache.prefetchBlobs, 0, 'prefetch is opt-in');
    assert.equal(config.upstreams[0]?.tagTtlMs, 300_000);
    assert.equal(config.upstreams[0]?.timeouts.connectMs, 10_000);
    assert.ok(Object.isFrozen(config.upstreams[0]));
  });

  it('reports every problem at once, each with its key path', () => {
    const found = problems({
      lisen: 'x',
      cache: { maxManifestBytes: '4 bananas', prefetchBlobs: -1 },
      upstreams: [{ host: 'docker.io', url: 'ftp://example', tagTtl: 'soon', extra: true }],
    });
    assert.ok(found.includes('lisen: unknown key'), found.join('\n'));
    assert.ok(found.some((p) => p.startsWith('cache.maxManifestBytes: expected a size')));
    assert.ok(found.some((p) => p.startsWith('cache.prefetchBlobs: ')), found.join('\n'));
    assert.ok(found.some((p) => p.startsWith('upstreams[0].url: ')));
    assert.ok(found.some((p) => p.startsWith('upstreams[0].tagTtl: expected a duration')));
    assert.ok(found.includes('upstreams[0].extra: unknown key'));
  });

  it('refuses duplicate hosts, two defaults, URLs with paths and no upstreams', () => {
    assert.ok(problems({ upstreams: [] }).some((p) => p.startsWith('upstreams: ')));
    const dup = problems({ upstreams: [{ host: 'a.io', url: 'http://a', default: true }, { host: 'a.io', url: 'http://b', default: true }] });
    assert.ok(dup.includes('upstreams[1].host: host a.io is configured twice'));
    assert.ok(dup.includes('upstreams[1].default: only one upstream may be the default'));
    assert.ok(problems({ upstreams: [{ host: 'a.io', url: 'http://a/v2' }] }).some((p) => p.startsWith('upstreams[0].url: expected a bare origin')));
    assert.ok(problems({ upstreams: [{ host: 'https://a.io', url: 'http://a' }] }).some((p) => p.startsWith('upstreams[0].host: ')));
    // The same host grammar the router checks requests against: a port no URL can hold is refused here too.
    assert.ok(problems({ upstreams: [{ host: 'a.io:99999', url: 'http://a', default: true }] }).some((p) => p.startsWith('upstreams[0].host: expected a registry host')));
  });

  it('says a URL without a scheme is one, instead of crashing', () => {
    const found = problems({ upstreams: [{ host: 'docker.io', url: 'registry-1.docker.io', default: true }] });
    assert.deepEqual(found, ['upstreams[0].url: expected an http:// or https:// URL: no scheme, did you mean https://registry-1.docker.io?']);
  });

  it('reports cross-field problems in the same pass as every other one', () => {
    const found = problems({
      listen: 'x',
      metrics: { requireToken: true },
      storage: { maxBytes: 'lots', highWatermark: 0.5, lowWatermark: 0.7 },
      upstreams: [
        { host: 'a.io', url: 'http://a', default: true, tagTtl: 'soon' },
        { host: 'a.io', url: 'a.example', default: true },
        { host: '*', default: true },
      ],
    });
    for (const expected of [
      'listen: ',
      'storage.maxBytes: expected a size',
      'storage.lowWatermark: lowWatermark must be below highWatermark',
      'upstreams[0].tagTtl: expected a duration',
      'upstreams[1].url: expected an http:// or https:// URL',
      'upstreams[1].host: host a.io is configured twice',
      'upstreams[1].default: only one upstream may be the default',
      'upstreams[2].default: the catch-all cannot be the default upstream',
      'metrics.requireToken: needs an admin token',
    ]) {
      assert.ok(found.some((p) => p.startsWith(expected)), `${expected}… in:\n${found.join('\n')}`);
    }
    assert.equal(new Set(found).size, found.length, `no problem twice:\n${found.join('\n')}`);
  });

  it('takes one catch-all upstream, reached at each registry host', () => {
    const config = parseConfig({ upstreams: [...minimal.upstreams, { host: '*' }] }, {}, 't');
    assert.equal(config.upstreams[1]?.host, '*');
    assert.ok(problems({ upstreams: [{ host: '*', url: 'https://example.com' }] }).some((p) => p.startsWith('upstreams[0].url: a catch-all')));
    assert.ok(problems({ upstreams: [{ host: '*', default: true }] }).includes('upstreams[0].default: the catch-all cannot be the default upstream'));
    assert.ok(problems({ upstreams: [{ host: '*', credentials: { username: 'u', password: 'p' } }] }).some((p) => p.startsWith('upstreams[0].credentials: a catch-all')));
    assert.ok(problems({ upstreams: [{ host: 'ghcr.io' }] }).some((p) => p.startsWith('upstreams[0].url: expected the URL')));
  });

  it('validates upstream credentials', () => {
    const withCredentials = (credentials: unknown) => ({ upstreams: [{ host: 'ghcr.io', url: 'https://ghcr.io', credentials }] });
    assert.equal(parseConfig(withCredentials({ username: 'u', passwordFile: '/run/secrets/p' }), {}, 't').upstreams[0]?.credentials?.shared, false);
    assert.ok(problems(withCredentials({ password: 'x' })).some((p) => p.startsWith('upstreams[0].credentials: give username')));
    assert.ok(problems(withCredentials({ username: 'u', password: 'x', passwordFile: '/f' })).some((p) => p.includes('not both')));
    assert.ok(problems(withCredentials({ username: 'u', token: 'x' })).includes('upstreams[0].credentials.token: unknown key'));
  });

  it('applies allow-listed environment overrides and names them in errors', () => {
    const config = parseConfig(minimal, { PULLTHROUGH_STORAGE_ROOT: '/data', PULLTHROUGH_LISTEN: '0.0.0.0:5001', UNRELATED: 'x' }, 'test');
    assert.equal(config.storage.root, '/data');
    assert.equal(config.listen, '0.0.0.0:5001');
    assert.ok(problems(minimal, { PULLTHROUGH_LOG_LEVEL: 'chatty' }).some((p) => p.startsWith('logLevel (set by PULLTHROUGH_LOG_LEVEL): ')));
    assert.equal(parseConfig(minimal, { PULLTHROUGH_OFFLINE: 'true' }, 'test').offline, true);
    assert.ok(problems(minimal, { PULLTHROUGH_OFFLINE: 'maybe' }).some((p) => p.startsWith('offline (set by PULLTHROUGH_OFFLINE): ')));
  });

  it('loads YAML files and says which file is wrong', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'pullthrough-config-'));
    const good = path.join(dir, 'good.yaml');
    await writeFile(good, 'upstreams:\n  - host: ghcr.io\n    url: https://ghcr.io\n    tagTtl: 90s\n');
    assert.equal(loadConfig(good, {}).upstreams[0]?.tagTtlMs, 90_000);
    const bad = path.join(dir, 'bad.yaml');
    await writeFile(bad, 'upstreams: [\n');
    assert.throws(() => loadConfig(bad, {}), (err: Error) => err instanceof ConfigError && err.message.includes(bad) && err.message.includes('not valid YAML'));
    assert.throws(() => loadConfig(path.join(dir, 'missing.yaml'), {}), /cannot read the file/);
  });

  it('prints durations and sizes as people write them, and parses back to the same config', () => {
    const upstreams = [{ ...minimal.upstreams[0], tagTtlRules: [{ match: 'v*', ttl: '1h' }] }];
    const config = parseConfig({ upstreams, storage: { maxBytes: '50GB', gcInterval: '90m' }, cache: { fillTimeout: 30 } }, {}, 't');
    assert.equal(config.cache.fillTimeoutMs, 30_000);
    assert.equal(config.upstreams[0]?.tagTtlRules[0]?.ttlMs, 3_600_000);
    const text = formatConfig(config);
    assert.match(text, /gcInterval: 90m\n/);
    assert.match(text, /maxBytes: 50GB\n/);
    assert.match(text, /maxManifestBytes: 4MiB\n/);
    assert.match(text, /fillTimeout: 30s\n/);
    assert.match(text, /tagTtl: 5m\n/);
    assert.match(text, /notFoundTtl: 10s\n/);
    assert.match(text, /headersTimeout: 30s\n/);
    assert.match(text, /openFor: 30s\n/);
    assert.match(text, /connect: 10s\n/);
    assert.match(text, /ttl: 1h\n/);
    assert.doesNotMatch(text, /3600000|4194304/);
    assert.doesNotMatch(text, /Ms:/, 'the keys a config file is written with, not the names the code reads');
    assert.deepEqual(parseConfig(parseYaml(text), {}, 'printed'), config);
  });

  it('prints the cluster section\'s durations the same way', () => {
    const cluster = { self: 'http://10.0.3.7:5000', peers: ['http://10.0.3.8:5000'], secretFile: '/run/secret', connectTimeout: '250ms' };
    const config = parseConfig({ ...minimal, cluster }, {}, 't');
    assert.equal(config.cluster?.connectTimeoutMs, 250);
    const text = formatConfig(config);
    assert.match(text, /refresh: 30s\n/);
    assert.match(text, /connectTimeout: 250ms\n/);
    assert.deepEqual(parseConfig(parseYaml(text), {}, 'printed'), config);
  });

  it('redacts secrets in the printed config', () => {
    const config = parseConfig({ upstreams: [{ host: 'ghcr.io', url: 'https://ghcr.io', credentials: { username: 'u', password: 'hunter2' } }] }, { PULLTHROUGH_ADMIN_TOKEN: 'a-very-long-admin-token' }, 't');
    const text = formatConfig(config);
    assert.doesNotMatch(text, /hunter2|a-very-long-admin-token/);
    assert.match(text, /password: "?\[redacted\]"?/);
  });

  it('ships an embedded default that validates', () => {
    const config = loadConfig(path.resolve('config/default.yaml'), {});
    assert.deepEqual(config.upstreams.map((u) => u.host), ['docker.io', 'ghcr.io', 'quay.io', 'registry.k8s.io']);
  });
});

describe('units', () => {
  it('says how long ago, in the unit people read at a glance', () => {
    const now = 1_000_000_000;
    assert.equal(formatAgo(undefined, now), 'never');
    assert.equal(formatAgo(null, now), 'never');
    assert.equal(formatAgo(now - 45_000, now), '45 s ago');
    assert.equal(formatAgo(now + 5_000, now), '0 s ago', 'a clock stepped back is not the future');
    assert.equal(formatAgo(now - 12 * 60_000, now), '12 min ago');
    assert.equal(formatAgo(now - 5 * 3_600_000, now), '5 h ago');
    assert.equal(formatAgo(now - 3 * 86_400_000, now), '3 d ago');
  });
  it('parses durations', () => {
    assert.equal(parseDurationMs('0'), 0);
    assert.equal(parseDurationMs('250ms'), 250);
    assert.equal(parseDurationMs('90s'), 90_000);
    assert.equal(parseDurationMs('5m'), 300_000);
    assert.equal(parseDurationMs('1h'), 3_600_000);
    assert.equal(parseDurationMs('7d'), 604_800_000);
    assert.equal(parseDurationMs(30), 30_000);
    for (const bad of ['5', '-1s', '1w', '', 'm']) assert.throws(() => parseDurationMs(bad), /expected a duration/);
  });
  it('parses sizes', () => {
    assert.equal(parseSizeBytes('512'), 512);
    assert.equal(parseSizeBytes('4MiB'), 4 * 2 ** 20);
    assert.equal(parseSizeBytes('50GiB'), 50 * 2 ** 30);
    assert.equal(parseSizeBytes('1.5GB'), 1.5e9);
    for (const bad of ['4 bananas', '-1', 'MiB', 1.5]) assert.throws(() => parseSizeBytes(bad), /expected a size/);
  });
  it('formats durations and sizes back in the largest unit that is exact', () => {
    assert.equal(formatDurationMs(0), '0');
    assert.equal(formatDurationMs(250), '250ms');
    assert.equal(formatDurationMs(1_500), '1500ms');
    assert.equal(formatDurationMs(5_400_000), '90m');
    assert.equal(formatDurationMs(3_600_000), '1h');
    assert.equal(formatDurationMs(604_800_000), '7d');
    assert.equal(formatSizeBytes(0), '0');
    assert.equal(formatSizeBytes(4 * 2 ** 20), '4MiB');
    assert.equal(formatSizeBytes(50e9), '50GB');
    assert.equal(formatSizeBytes(1000), '1KB');
    assert.equal(formatSizeBytes(1023), '1023');
    for (const n of [1, 999, 4096, 1.5e9, 3 * 2 ** 40]) assert.equal(parseSizeBytes(formatSizeBytes(n)), n);
    for (const ms of [1, 999, 61_000, 86_400_000 * 3]) assert.equal(parseDurationMs(formatDurationMs(ms)), ms);
  });
  it('parses listen addresses', () => {
    assert.deepEqual(parseListenAddress('127.0.0.1:5000'), { host: '127.0.0.1', port: 5000 });
    assert.deepEqual(parseListenAddress(':5000'), { host: '0.0.0.0', port: 5000 });
    assert.deepEqual(parseListenAddress('[::1]:5000'), { host: '::1', port: 5000 });
    for (const bad of ['5000', 'host:99999', 'a:b']) assert.throws(() => parseListenAddress(bad));
  });
});
