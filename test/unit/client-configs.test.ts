import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { parse as parseToml } from 'smol-toml';
import { parseAllDocuments, parse as parseYaml } from 'yaml';
import { loadConfig, parseConfig } from '../../src/config/load-config.js';
import { parseListenAddress } from '../../src/config/units.js';
import { createMetrics } from '../../src/metrics.js';

const config = loadConfig(path.resolve('config/default.yaml'), {});
const { port } = parseListenAddress(config.listen);
const mirror = `127.0.0.1:${port}`;
const certsDir = path.resolve('config/containerd/certs.d');
const SERVERS: Record<string, string> = Object.fromEntries(config.upstreams.map((u) => [u.host, u.url ?? '']));

describe('ready-to-copy client configs', () => {
  it('has a containerd hosts.toml for every default upstream, naming its server and the mirror port', async () => {
    const hosts = (await readdir(certsDir)).sort();
    assert.deepEqual(hosts, Object.keys(SERVERS).sort());
    for (const host of hosts) {
      const toml = parseToml(await readFile(path.join(certsDir, host, 'hosts.toml'), 'utf8')) as { server: string; host: Record<string, { capabilities: string[] }> };
      assert.equal(toml.server, SERVERS[host], host);
      assert.deepEqual(Object.keys(toml.host), [`http://${mirror}`], host);
      assert.deepEqual(toml.host[`http://${mirror}`]?.capabilities, ['pull', 'resolve'], host);
    }
    const containerdConfig = parseToml(await readFile('config/containerd/config.toml', 'utf8')) as { plugins: Record<string, { registry: { config_path: string } }> };
    assert.equal(containerdConfig.plugins['io.containerd.grpc.v1.cri']?.registry.config_path, '/etc/containerd/certs.d');
  });

  it('has a registries.conf with a path-prefix mirror per upstream', async () => {
    const conf = parseToml(await readFile('config/containers/registries.conf', 'utf8')) as { registry: Array<{ prefix: string; location: string; mirror: Array<{ location: string; insecure: boolean }> }> };
    assert.deepEqual(conf.registry.map((r) => r.prefix).sort(), Object.keys(SERVERS).sort());
    for (const registry of conf.registry) assert.deepEqual(registry.mirror, [{ location: `${mirror}/${registry.prefix}`, insecure: true }]);
  });

  it("has a docker daemon.json naming the mirror", async () => {
    const daemon = JSON.parse(await readFile('config/docker/daemon.json', 'utf8')) as { 'registry-mirrors': string[] };
    assert.deepEqual(daemon['registry-mirrors'], [`http://${mirror}`]);
  });

  it('has a DaemonSet whose config validates, whose probes hit the listen port, and whose hosts.toml match the files', async () => {
    interface Probe { httpGet: { host: string; path: string; port: number } }
    interface PodSpec {
      hostNetwork: boolean;
      containers: Array<{ readinessProbe: Probe; livenessProbe: Probe }>;
      volumes: Array<{ name: string; hostPath?: { path: string; type: string } }>;
    }
    interface Manifest { kind: string; metadata: { name: string }; data?: Record<string, string>; spec?: { template: { spec: PodSpec } } }
    const docs = parseAllDocuments(await readFile('config/kubernetes/daemonset.yaml', 'utf8')).map((d) => d.toJS() as Manifest);
    const byName = new Map(docs.map((d) => [`${d.kind}/${d.metadata.name}`, d]));
    const serverConfig = parseConfig(parseYaml(byName.get('ConfigMap/pullthrough-config')?.data?.['config.yaml'] ?? ''), {}, 'daemonset');
    assert.equal(serverConfig.listen, mirror);
    const hostsMap = byName.get('ConfigMap/pullthrough-containerd-hosts')?.data ?? {};
    for (const host of Object.keys(SERVERS)) assert.equal(hostsMap[host], await readFile(path.join(certsDir, host, 'hosts.toml'), 'utf8'), host);
    const pod = byName.get('DaemonSet/pullthrough')?.spec?.template.spec;
    assert.ok(pod);
    assert.equal(pod.hostNetwork, true);
    const container = pod.containers[0];
    assert.deepEqual(container?.readinessProbe.httpGet, { host: '127.0.0.1', path: '/readyz', port });
    assert.deepEqual(container?.livenessProbe.httpGet, { host: '127.0.0.1', path: '/healthz', port });
    assert.deepEqual(pod.volumes.find((v) => v.name === 'data')?.hostPath, { path: serverConfig.storage.root, type: 'DirectoryOrCreate' });
  });

  it('has a Grafana dashboard that uses only metrics pullthrough exports', async () => {
    const dashboard = JSON.parse(await readFile('config/grafana/pullthrough-dashboard.json', 'utf8')) as { panels: Array<{ targets: Array<{ expr: string }> }> };
    const metrics = createMetrics({ withDefaultMetrics: false, storageStats: () => ({ bytes: 0, objects: 0 }) });
    const exported = new Set((await metrics.registry.getMetricsAsJSON()).map((m) => m.name));
    const used = new Set(dashboard.panels.flatMap((p) => p.targets.flatMap((t) => t.expr.match(/pullthrough_[a-z_]+/g) ?? [])));
    assert.ok(used.size >= 8);
    for (const name of used) {
      const base = name.replace(/_(bucket|count|sum)$/, '');
      assert.ok(exported.has(name) || exported.has(base), `${name} is exported`);
    }
  });
});
