import assert from 'node:assert/strict';
import { cp, mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { freePort, requireBinary, runCommand, startDaemon, waitUntil } from '../helpers/processes.js';

interface RuntimeStage {
  env: Record<string, string>;
  copies: Array<{ from: string; to: string; fromBuild: boolean }>;
  entrypoint: string[];
  cmd: string[];
  healthcheck: string[];
}

/** Reads the last stage of the Dockerfile: what it copies, its ENV, ENTRYPOINT, CMD and HEALTHCHECK. */
function readRuntimeStage(dockerfile: string): RuntimeStage {
  const joined = dockerfile.replace(/\\\n\s*/g, ' ');
  const stage = joined.slice(joined.lastIndexOf('\nFROM '));
  const stage2: RuntimeStage = { env: {}, copies: [], entrypoint: [], cmd: [], healthcheck: [] };
  for (const line of stage.split('\n').map((l) => l.trim())) {
    if (line.startsWith('ENV ')) for (const [, k, v] of line.slice(4).matchAll(/(\w+)=(\S+)/g)) stage2.env[k!] = v!;
    const copy = /^COPY (--from=build )?(\S+) (\S+)$/.exec(line);
    if (copy) stage2.copies.push({ fromBuild: Boolean(copy[1]), from: copy[2]!, to: copy[3]! });
    if (line.startsWith('ENTRYPOINT ')) stage2.entrypoint = JSON.parse(line.slice(11)) as string[];
    if (line.startsWith('CMD ')) stage2.cmd = JSON.parse(line.slice(4)) as string[];
    const health = /^HEALTHCHECK .*?CMD (\[.*\])$/.exec(line);
    if (health) stage2.healthcheck = JSON.parse(health[1]!) as string[];
  }
  return stage2;
}

describe('packaging', { timeout: 300_000 }, () => {
  let work: string;
  before(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'pullthrough-packaging-'));
  });
  after(async () => {
    await rm(work, { recursive: true, force: true });
  });

  it('docker-compose accepts the compose file, with the monitoring profile too', async () => {
    await requireBinary('docker-compose');
    const plain = await runCommand('docker-compose', ['-f', 'docker-compose.yml', 'config']);
    assert.match(plain.stdout, /127\.0\.0\.1:5000/);
    assert.match(plain.stdout, /pullthrough-data/);
    const monitoring = await runCommand('docker-compose', ['-f', 'docker-compose.yml', '--profile', 'monitoring', 'config', '--services']);
    assert.deepEqual(monitoring.stdout.trim().split('\n').sort(), ['prometheus', 'pullthrough']);
  });

  it("runs the Dockerfile's runtime stage as laid out: production dependencies only, its CMD serves, its HEALTHCHECK passes", async () => {
    const stage = readRuntimeStage(await readFile('Dockerfile', 'utf8'));
    // The build stage's outputs, made the way it makes them.
    const build = path.join(work, 'build');
    await mkdir(build);
    for (const file of ['package.json', 'package-lock.json']) await cp(file, path.join(build, file));
    await cp('node_modules', path.join(build, 'node_modules'), { recursive: true, verbatimSymlinks: true });
    await runCommand('npx', ['tsc', '-p', 'tsconfig.build.json', '--outDir', path.join(build, 'dist')]);
    await runCommand('npm', ['prune', '--omit=dev', '--ignore-scripts', '--no-audit', '--no-fund'], { timeoutMs: 120_000, cwd: build });

    // The runtime stage's file system, rooted in a temp dir instead of /.
    const root = path.join(work, 'root');
    const inRoot = (p: string) => path.join(root, p.startsWith('/') ? p : path.join('/app', p));
    for (const copy of stage.copies) {
      const source = copy.fromBuild ? path.join(build, path.relative('/app', copy.from)) : copy.from;
      // Docker's rule: a destination ending in / is a directory the source goes into.
      const target = copy.to.endsWith('/') ? path.join(inRoot(copy.to), path.basename(copy.from)) : inRoot(copy.to);
      await mkdir(path.dirname(target), { recursive: true });
      await cp(source, target, { recursive: true, verbatimSymlinks: true });
    }
    assert.ok(stage.copies.some((c) => c.to === stage.env['PULLTHROUGH_CONFIG']), 'the config named by PULLTHROUGH_CONFIG is in the image');

    const port = await freePort();
    const env: Record<string, string | undefined> = {
      PATH: process.env['PATH'],
      ...Object.fromEntries(Object.entries(stage.env).map(([k, v]) => [k, v.startsWith('/') ? inRoot(v) : v])),
      PULLTHROUGH_LISTEN: `127.0.0.1:${port}`,
    };
    await mkdir(env['PULLTHROUGH_STORAGE_ROOT']!, { recursive: true });
    const [command, ...args] = [...stage.entrypoint, ...stage.cmd];
    assert.equal(command, 'node');
    const server = startDaemon(process.execPath, args.map((a) => (a.startsWith('dist/') ? inRoot(a) : a)), env);
    try {
      await waitUntil(async () => (await fetch(`http://127.0.0.1:${port}/readyz`)).ok, `the server to be ready\n${server.output()}`);
      const [healthCommand, ...healthArgs] = stage.healthcheck;
      assert.equal(healthCommand, 'node');
      await runCommand(process.execPath, healthArgs.map((a) => a.replace('127.0.0.1:5000', `127.0.0.1:${port}`)));
      assert.ok(!(await readFile(path.join(build, 'node_modules', '.package-lock.json'), 'utf8')).includes('"node_modules/typescript"'), 'no dev dependencies in the image');
    } finally {
      await server.stop();
    }
  });
});
