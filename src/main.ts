#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { createApp } from './app.js';
import { ConfigError, loadConfig } from './config/load-config.js';
import { createLogger } from './logger.js';

/*
 * The process edge: arguments, environment, signals and exit codes. The only module that
 * touches `process`.
 */

/** Kubernetes sends SIGKILL 30 s after SIGTERM by default: finish well inside that. */
const SHUTDOWN_GRACE_MS = 20_000;

const DEFAULT_CONFIG = fileURLToPath(new URL('../config/default.yaml', import.meta.url));

const USAGE = `usage: pullthrough serve [--config FILE] [--check-config]

  serve             run the registry mirror
  --config FILE     YAML config (default: $PULLTHROUGH_CONFIG, else the embedded config/default.yaml)
  --check-config    validate the config, print it (secrets omitted) and exit
  --version         print the version
`;

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      config: { type: 'string', short: 'c' },
      'check-config': { type: 'boolean' },
      version: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.version) {
    process.stdout.write(`${version()}\n`);
    return 0;
  }
  const command = positionals[0] ?? 'serve';
  if (values.help || command !== 'serve' || positionals.length > 1) {
    (values.help ? process.stdout : process.stderr).write(USAGE);
    return values.help ? 0 : 2;
  }
  const configPath = values.config ?? process.env['PULLTHROUGH_CONFIG'] ?? DEFAULT_CONFIG;
  const config = loadConfig(configPath, process.env);
  if (values['check-config']) {
    process.stdout.write(`${configPath}: ok\n${JSON.stringify(config, null, 2)}\n`);
    return 0;
  }

  const logger = createLogger(config.logLevel);
  const app = await createApp(config, { logger });
  await app.listen();
  await new Promise<void>((resolve) => {
    const stop = (signal: NodeJS.Signals) => {
      logger.info({ signal, graceMs: SHUTDOWN_GRACE_MS }, 'shutting down: finishing responses and fills in flight');
      // A second signal means "now": running fills are abandoned, their temp files purged at next start.
      process.once('SIGTERM', () => process.exit(143));
      process.once('SIGINT', () => process.exit(130));
      resolve();
    };
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  });
  await app.close({ graceMs: SHUTDOWN_GRACE_MS });
  logger.info({}, 'stopped');
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    if (err instanceof ConfigError) {
      process.stderr.write(`pullthrough: ${err.message}\n`);
      process.exitCode = 78; // EX_CONFIG
    } else if ((err as { code?: string }).code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') {
      process.stderr.write(`pullthrough: ${(err as Error).message}\n${USAGE}`);
      process.exitCode = 2;
    } else {
      process.stderr.write(`pullthrough: ${(err as Error).stack ?? String(err)}\n`);
      process.exitCode = 1;
    }
  },
);
