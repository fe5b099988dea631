import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError, formatConfig, parseConfig } from '../../../src/config/load-config.js';
import { parse as parseYaml } from 'yaml';

function problems(doc: unknown): readonly string[] {
  try {
    parseConfig(doc, {}, 'test');
  } catch (err) {
    assert.ok(err instanceof ConfigError);
    return err.problems;
  }
  assert.fail('expected a ConfigError');
}

const hub = { host: 'docker.io', url: 'https://registry-1.docker.io' };

describe('config: upstreams[].via and viaFallback', () => {
  it('takes an http(s) origin, and falls back by default', () => {
    const config = parseConfig({ upstreams: [{ ...hub, via: 'http://regional.example:5000/' }] }, {}, 'test');
    assert.equal(config.upstreams[0]?.via, 'http://regional.example:5000');
    assert.equal(config.upstreams[0]?.viaFallback, true);
    assert.equal(parseConfig({ upstreams: [hub] }, {}, 'test').upstreams[0]?.via, undefined);
    assert.deepEqual(parseConfig(parseYaml(formatConfig(config)), {}, 'test'), config, 'formatConfig round-trips it');
  });

  it('names the key of a via that is not an http(s) origin', () => {
    const found = problems({
      upstreams: [hub, { host: 'ghcr.io', url: 'https://ghcr.io', via: 'regional:5000' }, { host: 'quay.io', url: 'https://quay.io', via: 'http://regional:5000/v2/' }],
    });
    assert.ok(found.some((p) => p.startsWith('upstreams[1].via: ')), found.join('\n'));
    assert.ok(found.some((p) => p.startsWith('upstreams[2].via: expected a bare origin')), found.join('\n'));
    assert.ok(problems({ upstreams: [{ ...hub, viaFallback: 'yes' }] }).some((p) => p.startsWith('upstreams[0].viaFallback: ')));
  });

  it('refuses via on the catch-all', () => {
    const found = problems({ upstreams: [hub, { host: '*', via: 'http://regional:5000' }] });
    assert.ok(found.some((p) => p.startsWith('upstreams[1].via: a catch-all')), found.join('\n'));
  });
});
