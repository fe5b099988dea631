import { readFileSync } from 'node:fs';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import type { z } from 'zod';
import { configSchema, type Config } from './config.js';
import { duration, size } from './schema-units.js';
import { formatDurationMs, formatSizeBytes } from './units.js';

/** Start-up stops on this: it lists every problem found, each with its key path. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  readonly problems: readonly string[];

  constructor(source: string, problems: readonly string[], options?: { cause?: unknown }) {
    super(`invalid config (${source}):\n${problems.map((p) => `  - ${p}`).join('\n')}`, options);
    this.problems = problems;
  }
}

/**
 * Environment variables that override one config key each. An explicit list, so that no stray
 * variable can change behaviour and every override is documented in README.
 */
export const ENV_OVERRIDES: Readonly<Record<string, { readonly path: readonly string[]; readonly isBoolean?: boolean }>> = {
  PULLTHROUGH_ADMIN_TOKEN: { path: ['admin', 'token'] },
  PULLTHROUGH_CLUSTER_SELF: { path: ['cluster', 'self'] },
  PULLTHROUGH_CLUSTER_SECRET_FILE: { path: ['cluster', 'secretFile'] },
  PULLTHROUGH_LISTEN: { path: ['listen'] },
  PULLTHROUGH_LOG_LEVEL: { path: ['logLevel'] },
  PULLTHROUGH_OFFLINE: { path: ['offline'], isBoolean: true },
  PULLTHROUGH_STORAGE_ROOT: { path: ['storage', 'root'] },
};

/** Environment values are strings; booleans are spelt true/false (or 1/0). Anything else is left for the schema to reject. */
function booleanFromEnv(value: string): unknown {
  if (/^(true|1)$/i.test(value)) return true;
  if (/^(false|0)$/i.test(value)) return false;
  return value;
}

function setPath(target: Record<string, unknown>, path: readonly string[], value: unknown): void {
  let node = target;
  for (const key of path.slice(0, -1)) {
    const next = node[key];
    if (typeof next !== 'object' || next === null || Array.isArray(next)) node[key] = {};
    node = node[key] as Record<string, unknown>;
  }
  node[path[path.length - 1] as string] = value;
}

function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const key of path) out += typeof key === 'number' ? `[${key}]` : `${out ? '.' : ''}${String(key)}`;
  return out || '(top level)';
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}

/**
 * Validates an already-parsed config document with environment overrides applied, fills defaults
 * and freezes the result.
 * @throws ConfigError listing every invalid or unknown key.
 */
export function parseConfig(document: unknown, env: Readonly<Record<string, string | undefined>>, source: string): Config {
  if (document === null || document === undefined) document = {};
  if (typeof document !== 'object' || Array.isArray(document)) {
    throw new ConfigError(source, ['(top level): expected a mapping of keys']);
  }
  const raw = structuredClone(document) as Record<string, unknown>;
  for (const [name, { path, isBoolean }] of Object.entries(ENV_OVERRIDES)) {
    const value = env[name];
    if (value !== undefined && value !== '') setPath(raw, path, isBoolean ? booleanFromEnv(value) : value);
  }
  const result = configSchema.safeParse(raw);
  if (!result.success) {
    const problems = result.error.issues.map((issue) => {
      if (issue.code === 'unrecognized_keys') {
        return `${issue.keys.map((key) => formatPath([...issue.path, key])).join(', ')}: unknown key`;
      }
      const envName = Object.entries(ENV_OVERRIDES).find(([, o]) => o.path.join('.') === issue.path.join('.'))?.[0];
      const fromEnv = envName && env[envName] ? ` (set by ${envName})` : '';
      return `${formatPath(issue.path)}${fromEnv}: ${issue.message}`;
    });
    throw new ConfigError(source, problems);
  }
  return deepFreeze(result.data);
}

/**
 * Reads a YAML config file, applies the allow-listed environment overrides, validates it and
 * returns the frozen config. Runs once, at start-up.
 * @throws ConfigError when the file cannot be read or parsed, or any key is invalid.
 */
export function loadConfig(path: string, env: Readonly<Record<string, string | undefined>>): Config {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(path, [`cannot read the file: ${(err as Error).message}`], { cause: err });
  }
  let document: unknown;
  try {
    document = parseYaml(text);
  } catch (err) {
    throw new ConfigError(path, [`not valid YAML: ${(err as Error).message}`], { cause: err });
  }
  return parseConfig(document, env, path);
}

/** Keys whose values never leave the process, not even in `--check-config`. */
const SECRET_KEYS = new Set(['password', 'token']);

type SchemaDef = { type: string; innerType?: z.core.$ZodType; in?: z.core.$ZodType; shape?: Record<string, z.core.$ZodType>; element?: z.core.$ZodType };

/** Walks the schema beside the value, turning the milliseconds and bytes of duration and size keys back into units. */
function present(schema: z.core.$ZodType | undefined, value: unknown, key?: string): unknown {
  if (key !== undefined && SECRET_KEYS.has(key) && value !== undefined) return '[redacted]';
  if (schema === undefined) return value;
  // 0 needs no unit and stays a number (`maxBytes: 0`, not `maxBytes: "0"`).
  if ((schema === duration || schema === size) && typeof value === 'number' && value !== 0) {
    return schema === duration ? formatDurationMs(value) : formatSizeBytes(value);
  }
  const def = schema._zod.def as SchemaDef;
  if (def.innerType) return present(def.innerType, value, key);
  if (def.type === 'pipe') return present(def.in, value, key);
  if (def.type === 'array' && Array.isArray(value)) return value.map((item) => present(def.element, item));
  if (def.type === 'object' && typeof value === 'object' && value !== null) {
    // A duration read as `fooMs` is written `foo` (see withMs in schema-units.ts).
    const written = (k: string) => (def.shape?.[k] === undefined && k.endsWith('Ms') && def.shape?.[k.slice(0, -2)] !== undefined ? k.slice(0, -2) : k);
    return Object.fromEntries(
      Object.entries(value).map(([k, v]) => {
        const key = written(k);
        return [key, present(def.shape?.[key], v, key)];
      }),
    );
  }
  return value;
}

/**
 * The effective config as YAML, for `--check-config`: defaults filled in, durations and sizes
 * spelt the way a config file spells them (`1h`, `4MiB`), secrets redacted. Parses back to the
 * same config.
 */
export function formatConfig(config: Config): string {
  return stringifyYaml(present(configSchema, config));
}
