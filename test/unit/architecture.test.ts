import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';

/*
 * The layering README promises, checked on every import: http → cache → {upstream, storage} → oci,
 * with config, logger, metrics and concurrency as leaves; each library in its home folder; `process` only in
 * main.ts. What dependency-cruiser would do, in a few lines and no dependency.
 */

const SRC = path.resolve('src');

function files(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? files(path.join(dir, e.name)) : e.name.endsWith('.ts') ? [path.join(dir, e.name)] : []));
}

const sources = files(SRC).map((file) => {
  const text = readFileSync(file, 'utf8');
  const imports = [...text.matchAll(/^import[^'"]*from '([^']+)';/gm)].map((m) => m[1] as string);
  return { file: path.relative(SRC, file), text, imports };
});

/** The layer of a path under src/: its first folder, or the file for top-level modules. */
const layerOf = (relative: string): string => (relative.includes('/') ? (relative.split('/')[0] ?? '') : relative.replace(/\.(ts|js)$/, ''));

function resolvedLayer(from: string, specifier: string): string | undefined {
  if (!specifier.startsWith('.')) return undefined;
  return layerOf(path.relative(SRC, path.resolve(SRC, path.dirname(from), specifier)));
}

/**
 * Which layers each layer may import (besides itself). Leaves: logger, metrics, oci, concurrency
 * (a worker pool); config uses
 * only oci, the protocol facts (registry host grammar, Docker Hub's names) its checks rest on.
 */
const ALLOWED: Record<string, readonly string[]> = {
  oci: [],
  config: ['oci'],
  logger: [],
  metrics: [],
  concurrency: [],
  storage: ['oci', 'config', 'logger', 'metrics', 'concurrency'],
  upstream: ['oci', 'config', 'logger', 'metrics', 'concurrency'],
  cache: ['storage', 'upstream', 'oci', 'config', 'logger', 'metrics', 'concurrency'],
  http: ['cache', 'oci', 'config', 'logger', 'metrics', 'concurrency'],
  bundle: ['storage', 'oci', 'config', 'logger', 'metrics', 'concurrency'],
  cli: ['app', 'bundle', 'cache', 'storage', 'oci', 'config', 'logger', 'metrics', 'concurrency'],
  app: ['http', 'cache', 'upstream', 'storage', 'oci', 'config', 'logger', 'metrics', 'concurrency'],
  main: ['app', 'cli', 'bundle', 'config', 'logger'],
};

/** The one sanctioned reach: the error mapper turns upstream failures into HTTP answers (README "API"). */
const EXCEPTIONS = new Set<string>([]);

const HOMES: Record<string, string> = { express: 'http', undici: 'upstream', 'better-sqlite3': 'storage', pino: 'logger', 'prom-client': 'metrics', zod: 'config', yaml: 'config' };

describe('architecture', () => {
  it('imports point down the layers only', () => {
    const violations: string[] = [];
    for (const source of sources) {
      const from = layerOf(source.file) ?? '';
      for (const specifier of source.imports) {
        const to = resolvedLayer(source.file, specifier);
        if (!to || to === from) continue;
        if (!(ALLOWED[from] ?? []).includes(to) && !EXCEPTIONS.has(`${source.file} → ${to}`)) violations.push(`${source.file} imports ${specifier} (${from} → ${to})`);
      }
    }
    assert.deepEqual(violations, []);
  });

  it('keeps each library in its home folder', () => {
    const violations = sources.flatMap((s) =>
      s.imports.filter((i) => HOMES[i] !== undefined && layerOf(s.file) !== HOMES[i] && !(i === 'yaml' && layerOf(s.file) === 'config')).map((i) => `${s.file} imports ${i} (home: ${HOMES[i]})`),
    );
    assert.deepEqual(violations, []);
  });

  it('touches process only in main.ts', () => {
    const violations = sources.filter((s) => s.file !== 'main.ts' && /\bprocess\.(env|exit|argv|stdout|stderr|on|once|arch|cwd)\b/.test(s.text)).map((s) => s.file);
    assert.deepEqual(violations, []);
  });

  it('has no file over 400 lines', () => {
    assert.deepEqual(sources.filter((s) => s.text.split('\n').length > 400).map((s) => s.file), []);
  });
});
