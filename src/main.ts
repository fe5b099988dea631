#!/usr/bin/env -S node --max-semi-space-size=4 --heap-growing-percent=30
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { createApp } from './app.js';
import { ConfigError, formatConfig, loadConfig } from './config/load-config.js';
import { ImportError } from './bundle/import-error.js';
import { runExport, runImport } from './cli/bundle-commands.js';
import { runPreload, UsageError } from './cli/preload.js';
import { runStorageCommand } from './cli/storage-commands.js';
import type { CommandIo } from './cli/progress.js';
import type { Config } from './config/config.js';
import { createLogger } from './logger.js';

/*
 * The process edge: arguments, environment, signals and exit codes. The only module that
 * touches `process`.
 */

/** Kubernetes sends SIGKILL 30 s after SIGTERM by default: finish well inside that. */
const SHUTDOWN_GRACE_MS = 20_000;

const DEFAULT_CONFIG = fileURLToPath(new URL('../config/default.yaml', import.meta.url));

const USAGE = `usage: pullthrough <command> [--config FILE] [options]

  serve [--check-config]          run the registry mirror (the default command)
  preload IMAGE… [--file F]       pull images into the cache (pinned unless --no-pin)
  export IMAGE… -o BUNDLE.tar     pull images, then write them as an OCI image layout tarball
  import BUNDLE.tar               load an export or a docker save archive (pinned unless --no-pin)
  ls [--json]                     cached images with size, pulls, last pull, pin
  stats [--json]                  size of the cache against storage.maxBytes
  pin IMAGE / unpin IMAGE         keep an image through eviction, or stop keeping it
  rm IMAGE [--force]              drop an image and what only it used (--force: even if pinned)
  gc                              remove unreferenced blobs, stray and dead temp files
  verify [--repair]               re-hash everything; exit 1 on damage; --repair drops it

  --config FILE                   YAML config (default: $PULLTHROUGH_CONFIG, else config/default.yaml)
  --platform P[,P…]               preload/export: platforms of multi-platform images (default: this machine's)
  --all-platforms                 preload/export: every platform
  --referrers                     preload/export: also every referrer (signatures, SBOMs) of each image
  --via URL                       preload/export: pull through the pullthrough at URL
  --version, --help
`;

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

/** Takes `--config FILE` / `-c FILE` / `--config=FILE` out of the arguments, wherever it stands. */
function takeConfig(args: readonly string[]): { configPath: string | undefined; rest: string[] } {
  const rest: string[] = [];
  let configPath: string | undefined;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] as string;
    if (arg === '--config' || arg === '-c') configPath = args[++i];
    else if (arg.startsWith('--config=')) configPath = arg.slice('--config='.length);
    else rest.push(arg);
  }
  return { configPath, rest };
}

async function serve(config: Config, args: readonly string[], configPath: string): Promise<number> {
  const { values } = parseArgs({ args: [...args], options: { 'check-config': { type: 'boolean' } } });
  if (values['check-config']) {
    process.stdout.write(`# ${configPath}: ok\n${formatConfig(config)}`);
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

async function main(argv: string[]): Promise<number> {
  if (argv.includes('--version')) {
    process.stdout.write(`${version()}\n`);
    return 0;
  }
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(USAGE);
    return 0;
  }
  const isCommand = argv[0] !== undefined && !argv[0].startsWith('-');
  const command = isCommand ? (argv[0] as string) : 'serve';
  const { configPath = process.env['PULLTHROUGH_CONFIG'] ?? DEFAULT_CONFIG, rest } = takeConfig(isCommand ? argv.slice(1) : argv);
  const config = loadConfig(configPath, process.env);
  const io: CommandIo = { out: process.stdout, err: process.stderr, isInteractive: process.stderr.isTTY === true, env: process.env, now: Date.now };
  switch (command) {
    case 'serve':
      return serve(config, rest, configPath);
    case 'preload':
      return runPreload(rest, config, io, process.arch);
    case 'export':
      return runExport(rest, config, io, process.arch);
    case 'import':
      return runImport(rest, config, io);
    case 'ls':
    case 'stats':
    case 'pin':
    case 'unpin':
    case 'rm':
    case 'gc':
    case 'verify':
      return runStorageCommand(command, rest, config, io);
    default:
      throw new UsageError(`unknown command ${JSON.stringify(command)}`);
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    if (err instanceof ConfigError) {
      process.stderr.write(`pullthrough: ${err.message}\n`);
      process.exitCode = 78; // EX_CONFIG
    } else if (err instanceof UsageError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      process.stderr.write(`pullthrough: ${(err as Error).message}\n\n${USAGE}`);
      process.exitCode = 2;
    } else if (err instanceof ImportError) {
      process.stderr.write(`pullthrough: ${err.message}\n`);
      process.exitCode = 1;
    } else {
      process.stderr.write(`pullthrough: ${(err as Error).stack ?? String(err)}\n`);
      process.exitCode = 1;
    }
  },
);
