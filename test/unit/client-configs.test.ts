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

interface Probe { httpGet: { host?: string; path: string; port: number } }
interface Container {
  env?: Array<{ name: string; value?: string; valueFrom?: unknown }>;
  readinessProbe: Probe;
  livenessProbe: Probe;
  volumeMounts: Array<{ name: string; mountPath: string }>;
}
interface PodSpec {
  hostNetwork?: boolean;
  containers: Container[];
  volumes: Array<{
    name: string;
    hostPath?: { path: string; type: string };
    configMap?: { name: string };
    projected?: { sources: Array<{ configMap?: { name: string }; secret?: { name: string; items?: Array<{ key: string; path: string }> } }> };
  }>;
}
interface Manifest {
  kind: string;
  metadata: { name: string; namespace?: string };
  data?: Record<string, string>;
  stringData?: Record<string, string>;
  spec?: {
    clusterIP?: string;
    publishNotReadyAddresses?: boolean;
    selector?: Record<string, string>;
    ports?: Array<{ port: number; targetPort?: number }>;
    template?: { metadata?: { labels?: Record<string, string> }; spec: PodSpec };
  };
}

/** The documents of a Kubernetes manifest file by `Kind/name`. */
async function manifests(file: string): Promise<Map<string, Manifest>> {
  const docs = parseAllDocuments(await readFile(file, 'utf8')).map((d) => d.toJS() as Manifest);
  return new Map(docs.map((d) => [`${d.kind}/${d.metadata.name}`, d]));
}

/** A container's literal env values as the kubelet expands them (`$(NAME)` from earlier entries or `given`). */
function containerEnv(container: Container, given: Record<string, string>): Record<string, string> {
  const env: Record<string, string> = {};
  for (const entry of container.env ?? []) {
    const value = entry.value ?? given[entry.name];
    if (value !== undefined) env[entry.name] = value.replace(/\$\((\w+)\)/g, (whole, name: string) => env[name] ?? whole);
  }
  return env;
}

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
    const byName = await manifests('config/kubernetes/daemonset.yaml');
    const pod = byName.get('DaemonSet/pullthrough')?.spec?.template?.spec;
    assert.ok(pod);
    const container = pod.containers[0]!;
    const serverConfig = parseConfig(parseYaml(byName.get('ConfigMap/pullthrough-config')?.data?.['config.yaml'] ?? ''), containerEnv(container, { POD_IP: '10.0.3.7' }), 'daemonset');
    // The node's containerd reaches it on loopback; the peers at the node's address.
    const listen = parseListenAddress(serverConfig.listen);
    assert.equal(listen.port, port);
    assert.ok(['127.0.0.1', '0.0.0.0'].includes(listen.host), `listen ${serverConfig.listen} takes ${mirror}`);
    const hostsMap = byName.get('ConfigMap/pullthrough-containerd-hosts')?.data ?? {};
    for (const host of Object.keys(SERVERS)) assert.equal(hostsMap[host], await readFile(path.join(certsDir, host, 'hosts.toml'), 'utf8'), host);
    assert.equal(pod.hostNetwork, true);
    assert.deepEqual(container.readinessProbe.httpGet, { host: '127.0.0.1', path: '/readyz', port });
    assert.deepEqual(container.livenessProbe.httpGet, { host: '127.0.0.1', path: '/healthz', port });
    assert.deepEqual(pod.volumes.find((v) => v.name === 'data')?.hostPath, { path: serverConfig.storage.root, type: 'DirectoryOrCreate' });
  });

  it('makes the DaemonSet a cluster: self from the pod IP, members from a headless Service of its pods, the secret from a Secret', async () => {
    const byName = await manifests('config/kubernetes/daemonset.yaml');
    const daemonSet = byName.get('DaemonSet/pullthrough');
    const pod = daemonSet?.spec?.template?.spec;
    assert.ok(daemonSet && pod);
    const container = pod.containers[0]!;
    const serverConfig = parseConfig(parseYaml(byName.get('ConfigMap/pullthrough-config')?.data?.['config.yaml'] ?? ''), containerEnv(container, { POD_IP: '10.0.3.7' }), 'daemonset');
    const cluster = serverConfig.cluster;
    assert.ok(cluster);
    // On the host network status.podIP is the node's address, where the server listens too.
    assert.deepEqual(container.env?.find((e) => e.name === 'POD_IP')?.valueFrom, { fieldRef: { fieldPath: 'status.podIP' } });
    assert.equal(cluster.self, `http://10.0.3.7:${port}`);
    assert.equal(parseListenAddress(serverConfig.listen).host, '0.0.0.0');

    const service = [...byName.values()].find((d) => d.kind === 'Service' && d.spec?.clusterIP === 'None');
    assert.ok(service, 'a headless Service');
    assert.equal(cluster.dns, `${service.metadata.name}.${service.metadata.namespace}.svc.cluster.local`);
    assert.equal(service.metadata.namespace, daemonSet.metadata.namespace);
    assert.equal(service.spec?.publishNotReadyAddresses, false, 'members are ready pods only');
    assert.deepEqual(service.spec?.selector, daemonSet.spec?.template?.metadata?.labels);
    assert.deepEqual(service.spec?.ports?.map((p) => p.port), [port]);

    // secretFile is a file of the Secret, projected into a volume the container mounts.
    assert.ok(cluster.secretFile);
    const mount = container.volumeMounts.find((m) => cluster.secretFile!.startsWith(`${m.mountPath}/`));
    assert.ok(mount, `${cluster.secretFile} is in a mounted volume`);
    const fileName = cluster.secretFile.slice(mount.mountPath.length + 1);
    const sources = pod.volumes.find((v) => v.name === mount.name)?.projected?.sources ?? [];
    const fromSecret = sources.flatMap((source) => (source.secret?.items ?? []).filter((item) => item.path === fileName).map((item) => ({ name: source.secret!.name, key: item.key })));
    assert.equal(fromSecret.length, 1, `${fileName} comes from one Secret key`);
    const secret = byName.get(`Secret/${fromSecret[0]!.name}`);
    const placeholder = secret?.stringData?.[fromSecret[0]!.key];
    assert.ok(placeholder !== undefined, 'the Secret holds the key');
    // Too short for app start-up (at least 16 characters): a shipped, public secret can never be run by mistake.
    assert.ok(placeholder.trim().length < 16, 'the placeholder is refused at start-up');
  });

  it('has a regional Deployment behind a Service, whose config validates, and a node snippet whose via names that Service', async () => {
    const file = 'config/kubernetes/regional.yaml';
    const byName = await manifests(file);
    const deployment = byName.get('Deployment/pullthrough-regional');
    const pod = deployment?.spec?.template?.spec;
    assert.ok(deployment && pod);
    const container = pod.containers[0]!;
    const configMap = pod.volumes.find((v) => v.name === container.volumeMounts.find((m) => m.mountPath === '/etc/pullthrough')?.name)?.configMap?.name;
    const serverConfig = parseConfig(parseYaml(byName.get(`ConfigMap/${configMap}`)?.data?.['config.yaml'] ?? ''), containerEnv(container, {}), 'regional');
    const { port: regionalPort } = parseListenAddress(serverConfig.listen);
    assert.equal(container.readinessProbe.httpGet.port, regionalPort);
    assert.equal(container.livenessProbe.httpGet.port, regionalPort);
    const service = byName.get('Service/pullthrough-regional');
    assert.ok(service);
    assert.deepEqual(service.spec?.selector, deployment.spec?.template?.metadata?.labels);
    assert.deepEqual(service.spec?.ports?.map((p) => p.targetPort), [regionalPort]);
    // The node snippet in the file's opening comment: every via points at this Service.
    const snippet = (await readFile(file, 'utf8')).split('\n').filter((line) => line.startsWith('#   ')).map((line) => line.slice(1)).join('\n');
    const nodeUpstreams = (parseYaml(snippet) as { upstreams: Array<{ host: string; via?: string }> }).upstreams;
    assert.ok(nodeUpstreams.length > 0);
    for (const upstream of nodeUpstreams) assert.equal(upstream.via, `http://${service.metadata.name}.${service.metadata.namespace}.svc:${service.spec?.ports?.[0]?.port}`, upstream.host);
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
