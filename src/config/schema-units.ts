import { z } from 'zod';
import { parseDurationMs, parseSizeBytes } from './units.js';

/*
 * The schema types of keys with units, shared by every config schema (config.ts and the
 * sections it imports): `formatConfig` recognises a duration or size key by these very values.
 */

function unit<T>(parse: (input: string | number) => T) {
  return z.union([z.string(), z.number()]).transform((input, ctx) => {
    try {
      return parse(input);
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: (err as Error).message });
      return z.NEVER;
    }
  });
}

/** A duration key (`5m`), held in milliseconds; `formatConfig` prints it back the way it is written. */
export const duration = unit(parseDurationMs);
/** A size key (`4MiB`), held in bytes; `formatConfig` prints it back the way it is written. */
export const size = unit(parseSizeBytes);

/** `keys` renamed `<key>Ms`. */
type WithMs<O, K extends keyof O & string> = { [P in keyof O as P extends K ? `${P}Ms` : P]: O[P] };

/**
 * Renames duration keys to carry their unit (`fillTimeout` → `fillTimeoutMs`) once they are
 * milliseconds: the file says `fillTimeout: 30m`, the code reads `fillTimeoutMs`. Validation has
 * run by then, so problems still name the key as written; `formatConfig` maps the names back.
 */
export function withMs<O extends object, const K extends keyof O & string>(value: O, keys: readonly K[]): WithMs<O, K> {
  const out: Record<string, unknown> = { ...(value as Record<string, unknown>) };
  for (const key of keys) {
    out[`${key}Ms`] = out[key];
    delete out[key];
  }
  return out as WithMs<O, K>;
}
