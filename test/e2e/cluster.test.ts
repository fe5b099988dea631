import assert from 'node:assert/strict';
import { access, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Transform } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, afterEach, before, describe, it } from 'node:test';
import { rendezvousOrder } from '../../src/upstream/cluster-members.js';
import { skopeoCopy } from '../helpers/clients.js';
import { startDistribution, type Distribution } from '../helpers/distribution.js';
import { startDnsServer, type DnsServer } from '../helpers/dns-server.js';
import { blobsOf, makeImage, makeIndex, type ImageIndex, type ImageManifest } from '../helpers/images.js';
import { freePort, startDaemon, waitUntil, type Daemon } from '../helpers/processes.js';
import { metricValue } from '../helpers/pullthrough.js';

/** The built program, as a node runs it: `npm run build` first. */
const MAIN = path.resolve('dist/main.js');
const SECRET = 'an-e2e-cluster-secret-long-enough';

/** One pullthrough process of the cluster. */
interface Member {
  /** Its `cluster.self`: `http://127.0.0.N:port`. */
  readonly url: string;
  /** For image references: `127.0.0.N:port`. */
  readonly host: string;
  readonly daemon: Daemon;
}

function assertSameImage(files: Map<string, Buffer>, image: ImageManifest | ImageIndex, who: string): void {
  assert.ok(files.get('manifest.json')?.equals(image.bytes), `${who}: the manifest has digest ${image.digest}`);
  for (const blob of blobsOf(image)) assert.ok(files.get(blob.digest.slice('sha256:'.length))?.equals(blob.bytes), `${who}: blob ${blob.digest} is exact`);
}

async function pullAndCheck(member: Member, reference: string, image: ImageManifest | ImageIndex, creds?: string): Promise<void> {
  const pulled = await skopeoCopy(`${member.host}/${reference}`, { tlsVerify: false, all: 'images' in image, ...(creds && { creds }) });
  try {
    assertSameImage(pulled.files, image, member.url);
  } finally {
    await pulled.cleanup();
  }
}

/**
 * A TCP relay in front of the upstream that sends its answers at `bytesPerSecond` per connection:
 * a big layer then takes seconds, long enough to kill a member in the middle of it. It tells how
 * many bytes the busiest connection has relayed so far.
 */
async function startSlowRelay(target: URL, bytesPerSecond: number): Promise<{ url: string; busiest(): number; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  let busiest = 0;
  const server: Server = createServer((client) => {
    const upstream = connect(Number(target.port), target.hostname);
    let relayed = 0;
    const slow = new Transform({
      transform(chunk: Buffer, _encoding, callback) {
        relayed += chunk.length;
        busiest = Math.max(busiest, relayed);
        setTimeout(() => callback(null, chunk), Math.ceil((chunk.length / bytesPerSecond) * 1000));
      },
    });
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.once('close', () => sockets.delete(socket));
      socket.on('error', () => {
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream);
    upstream.pipe(slow).pipe(client);
    client.once('close', () => upstream.destroy());
    upstream.once('close', () => slow.end());
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    url: `http://127.0.0.1:${(server.address() as { port: number }).port}`,
    busiest: () => busiest,
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

describe('cluster end to end: pullthrough processes in front of one distribution registry', { timeout: 600_000 }, () => {
  let registry: Distribution;
  let dir: string;
  let secretFile: string;
  let members: Member[] = [];
  const cleanups: Array<() => Promise<void>> = [];

  before(async () => {
    await access(MAIN).catch(() => {
      throw new Error(`${MAIN} is missing: run npm run build first`);
    });
    registry = await startDistribution({ accessLog: true });
    dir = await mkdtemp(path.join(tmpdir(), 'pullthrough-e2e-cluster-'));
    secretFile = path.join(dir, 'cluster-secret');
    await writeFile(secretFile, `${SECRET}\n`, { mode: 0o600 });
  });
  afterEach(async () => {
    await Promise.all(members.map((member) => member.daemon.stop()));
    members = [];
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => undefined);
  });
  after(async () => {
    await registry?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  /** Starts one member as a process of its own, with fresh storage, and waits until it answers. */
  async function startMember(options: { address: string; port: number; upstreamUrl: string; cluster: Record<string, unknown>; cache?: Record<string, unknown> }): Promise<Member> {
    const url = `http://${options.address}:${options.port}`;
    const root = await mkdtemp(path.join(dir, 'member-'));
    const config = path.join(root, 'config.yaml');
    // JSON is YAML.
    await writeFile(
      config,
      JSON.stringify({
        listen: `${options.address}:${options.port}`,
        logLevel: 'warn',
        storage: { root: path.join(root, 'storage') },
        upstreams: [{ host: 'docker.io', url: options.upstreamUrl, default: true }],
        ...(options.cache && { cache: options.cache }),
        cluster: { self: url, secretFile, ...options.cluster },
      }),
    );
    const daemon = startDaemon(process.execPath, [MAIN, 'serve', '--config', config]);
    const member = { url, host: `${options.address}:${options.port}`, daemon };
    members.push(member);
    try {
      await waitUntil(async () => (await fetch(`${url}/healthz`)).ok, `member ${url} to start`);
    } catch (err) {
      throw new Error(`${(err as Error).message}\n${daemon.output()}`);
    }
    return member;
  }

  /** `count` members on 127.0.0.1, each on a port of its own, every one listing all of them. */
  async function startStaticCluster(count: number, upstreamUrl = registry.url, cache?: Record<string, unknown>): Promise<Member[]> {
    const ports = await Promise.all(Array.from({ length: count }, () => freePort()));
    const urls = ports.map((port) => `http://127.0.0.1:${port}`);
    return Promise.all(ports.map((port) => startMember({ address: '127.0.0.1', port, upstreamUrl, cluster: { peers: urls }, ...(cache && { cache }) })));
  }

  /** The members in placement order for `digest`: the owner first. */
  function byOwnership(cluster: readonly Member[], digest: string): Member[] {
    return rendezvousOrder(cluster, digest);
  }

  /** Upstream GETs of each blob of `image` in `repository`, as distribution's access log counts them. */
  function upstreamGets(registryUnderTest: Distribution, repository: string, image: ImageManifest | ImageIndex): Map<string, number> {
    const counts = new Map(blobsOf(image).map((blob) => [blob.digest, 0]));
    for (const served of registryUnderTest.served()) {
      const digest = served.path.slice(`/v2/${repository}/blobs/`.length);
      if (served.method === 'GET' && served.path.startsWith(`/v2/${repository}/blobs/`) && counts.has(digest)) counts.set(digest, counts.get(digest)! + 1);
    }
    return counts;
  }

  /** Exactly one upstream GET per blob; waits for the access log, which distribution writes as each answer ends. */
  async function assertOneGetPerBlob(registryUnderTest: Distribution, repository: string, image: ImageManifest | ImageIndex): Promise<void> {
    const fetched = () => [...upstreamGets(registryUnderTest, repository, image).values()].every((count) => count >= 1);
    await waitUntil(async () => fetched(), 'the access log to show every blob').catch(() => undefined);
    // A duplicate fetch still running would land in the log now.
    await sleep(300);
    const expected = new Map(blobsOf(image).map((blob) => [blob.digest, 1]));
    assert.deepEqual(upstreamGets(registryUnderTest, repository, image), expected, 'one upstream GET per blob for the whole cluster');
  }

  it('four members pulling one image at once: exact digests everywhere, one upstream GET per blob for the cluster', async () => {
    const image = makeImage({ layerSizes: [3_000_000, 1_000_000, 200_000, 40_000] });
    await registry.push('team/app', '1.0', image);
    const cluster = await startStaticCluster(4);
    // Every member owns some blob here, or the test would not show placement (five blobs, four members).
    const owners = new Set(blobsOf(image).map((blob) => byOwnership(cluster, blob.digest)[0]!.url));
    assert.ok(owners.size >= 2, 'the blobs are spread over members');

    await Promise.all(cluster.map((member) => pullAndCheck(member, 'team/app:1.0', image)));
    await assertOneGetPerBlob(registry, 'team/app', image);
    let fromPeers = 0;
    for (const member of cluster) fromPeers += await metricValue(member.url, 'pullthrough_served_bytes_total', { source: 'peer' });
    assert.ok(fromPeers > 0, 'members served bytes they got from the owner');
  });

  it("a multi-platform index pulled through every member: each platform's manifest by digest and each blob come from the upstream once", async () => {
    const index = makeIndex([makeImage({ layerSizes: [600_000, 30_000] }), makeImage({ layerSizes: [500_000], platform: { os: 'linux', architecture: 'arm64' } })]);
    await registry.push('team/multi', '1.0', index);
    const cluster = await startStaticCluster(3);
    await Promise.all(cluster.map((member) => pullAndCheck(member, 'team/multi:1.0', index)));
    await assertOneGetPerBlob(registry, 'team/multi', index);
    const byDigest = (digest: string) => registry.served().filter((r) => r.method === 'GET' && r.path === `/v2/team/multi/manifests/${digest}`).length;
    assert.deepEqual(
      index.images.map((image) => byDigest(image.digest)),
      index.images.map(() => 1),
      'one upstream GET per platform manifest for the whole cluster',
    );
  });

  it('with cache.prefetchBlobs, prefetch follows placement too: still one upstream GET per blob', async () => {
    const image = makeImage({ layerSizes: [2_000_000, 500_000, 100_000, 30_000] });
    await registry.push('team/prefetched', '1.0', image);
    const cluster = await startStaticCluster(3, registry.url, { prefetchBlobs: 3 });
    await Promise.all(cluster.map((member) => pullAndCheck(member, 'team/prefetched:1.0', image)));
    await assertOneGetPerBlob(registry, 'team/prefetched', image);
  });

  it('a member configured with cluster.dns finds the others through the resolver and shares their fetches', async () => {
    const name = 'pullthrough-peers.cluster.test';
    // Members found by DNS are addressed with the port of self: one port, distinct loopback addresses.
    const addresses = ['127.0.0.2', '127.0.0.3', '127.0.0.4'];
    const port = await freePort();
    const urls = addresses.map((address) => `http://${address}:${port}`);
    const dnsMember = urls[2]!;
    // An image with a blob the DNS member does not own, so that its pull needs the others.
    let image = makeImage({ layerSizes: [500_000, 100_000, 20_000] });
    for (let i = 0; i < 20 && blobsOf(image).every((blob) => rendezvousOrder(urls.map((url) => ({ url })), blob.digest)[0]!.url === dnsMember); i++) {
      image = makeImage({ layerSizes: [500_000, 100_000, 20_000] });
    }
    await registry.push('team/dns', '1.0', image);
    const dns: DnsServer = await startDnsServer({ name, addresses });
    cleanups.push(() => dns.close());

    const cluster = await Promise.all(
      addresses.map((address, i) =>
        startMember({ address, port, upstreamUrl: registry.url, cluster: i === 2 ? { dns: name, dnsServers: [dns.address], refresh: '1s' } : { peers: urls } }),
      ),
    );
    const upMembers = () => metricValue(dnsMember, 'pullthrough_cluster_members', { state: 'up' });
    await waitUntil(async () => (await upMembers()) === 3, 'the DNS member to know all three members', 10_000);
    assert.ok(dns.questions.some((q) => q === `${name} A`), 'it asked the resolver it was given');
    const status = (await (await fetch(`${dnsMember}/_pullthrough/status`)).json()) as { cluster: { self: string; members: Array<{ url: string; state: string }> } };
    assert.equal(status.cluster.self, dnsMember);
    assert.deepEqual(
      [...status.cluster.members].sort((a, b) => a.url.localeCompare(b.url)),
      urls.map((url) => ({ url, state: url === dnsMember ? 'self' : 'up' })),
      'the status page lists the members the resolver named',
    );

    await Promise.all(cluster.map((member) => pullAndCheck(member, 'team/dns:1.0', image)));
    await assertOneGetPerBlob(registry, 'team/dns', image);

    // Re-resolved every refresh: a member gone from the answer is no longer one.
    dns.setAddresses(['127.0.0.2', '127.0.0.4']);
    await waitUntil(async () => (await upMembers()) === 2, 'the DNS member to drop the member gone from the answer', 10_000);
  });

  it('a member killed with SIGKILL in the middle of a big layer: the pulls through the others finish with the right digest', async () => {
    const image = makeImage({ layerSizes: [64 * 1024 * 1024, 300_000] });
    await registry.push('team/big', '1.0', image);
    // The upstream answers at 16 MiB/s per connection: the big layer takes about four seconds.
    const relay = await startSlowRelay(new URL(registry.url), 16 * 1024 * 1024);
    cleanups.push(() => relay.close());
    const cluster = await startStaticCluster(3, relay.url);
    const big = image.layers[0]!;
    const [owner, ...survivors] = byOwnership(cluster, big.digest);

    const pulls = survivors.map((member) => pullAndCheck(member, 'team/big:1.0', image));
    // The owner is relaying the big layer (nothing else is this large) to the others: now.
    await waitUntil(async () => relay.busiest() > 16 * 1024 * 1024, 'the big layer to be on its way', 60_000);
    owner!.daemon.child.kill('SIGKILL');
    await once(owner!.daemon.child, 'exit');
    await Promise.all(pulls);

    // It did die mid-body: a survivor saw the owner's stream break off, and took over from elsewhere.
    let brokeOff = 0;
    for (const member of survivors) brokeOff += await metricValue(member.url, 'pullthrough_peer_requests_total', { peer: owner!.url, result: 'error' });
    assert.ok(brokeOff >= 1, 'a survivor lost the owner in the middle of a peer request');

    // With the member dead (and not yet marked down everywhere), a new image: the next member in
    // placement order takes over its share, and the cluster still fetches each blob once.
    const ownedByTheDead = (candidate: ImageManifest) => blobsOf(candidate).some((blob) => byOwnership(cluster, blob.digest)[0] === owner);
    let next = makeImage({ layerSizes: [1_000_000, 200_000, 50_000] });
    for (let i = 0; i < 30 && !ownedByTheDead(next); i++) next = makeImage({ layerSizes: [1_000_000, 200_000, 50_000] });
    assert.ok(ownedByTheDead(next), 'the dead member owns a blob of the new image');
    await registry.push('team/after', '1.0', next);
    await Promise.all(survivors.map((member) => pullAndCheck(member, 'team/after:1.0', next)));
    await assertOneGetPerBlob(registry, 'team/after', next);
  });

  it("keeps private images private: alice's pull through one member is refused to anonymous and wrong-password clients on the others", async () => {
    const privateRegistry = await startDistribution({ auth: { kind: 'htpasswd', users: { alice: 'wonderland' } } });
    cleanups.push(() => privateRegistry.stop());
    const cluster = await startStaticCluster(3, privateRegistry.url);
    // alice pulls through the owner of a layer and of the manifest: it holds both, and the others would ask it for them.
    const ownerOf = (digest: string) => byOwnership(cluster, digest)[0]!;
    let image = makeImage({ layerSizes: [400_000, 60_000] });
    for (let i = 0; i < 40 && ownerOf(image.digest) !== ownerOf(image.layers[0]!.digest); i++) image = makeImage({ layerSizes: [400_000, 60_000] });
    assert.equal(ownerOf(image.digest), ownerOf(image.layers[0]!.digest), 'one member owns the manifest and a layer');
    await privateRegistry.push('team/private', '1.0', image);
    const [alices, ...others] = byOwnership(cluster, image.layers[0]!.digest);
    await pullAndCheck(alices!, 'team/private:1.0', image, 'alice:wonderland');

    const basic = (password: string) => `Basic ${Buffer.from(`alice:${password}`).toString('base64')}`;
    for (const member of others) {
      await assert.rejects(skopeoCopy(`${member.host}/team/private:1.0`, { tlsVerify: false }), /401|unauthorized|authentication/i, `${member.url}: anonymous`);
      await assert.rejects(skopeoCopy(`${member.host}/team/private:1.0`, { tlsVerify: false, creds: 'alice:guess' }), /401|unauthorized|authentication/i, `${member.url}: wrong password`);
      // What a client that knows the digests asks for directly.
      for (const [who, authorization] of [['anonymous', undefined], ['wrong password', basic('guess')]] as const) {
        for (const [what, suffix, bytes] of [
          ['manifest', `manifests/${image.digest}`, image.bytes],
          ...blobsOf(image).map((blob) => ['blob', `blobs/${blob.digest}`, blob.bytes] as const),
        ] as const) {
          const response = await fetch(`${member.url}/v2/team/private/${suffix}`, { headers: { accept: image.mediaType, ...(authorization && { authorization }) } });
          const body = Buffer.from(await response.arrayBuffer());
          assert.equal(response.status, 401, `${member.url}: ${who}, ${what} ${suffix}`);
          assert.equal(body.includes(bytes.subarray(0, 32)), false, `${member.url}: ${who} got nothing of the ${what}`);
        }
      }
      assert.equal(await metricValue(member.url, 'pullthrough_served_bytes_total'), 0, `${member.url} served no byte of it`);
    }
    // The refusals and the owners' failed anonymous fills are nobody's answer for alice.
    for (const member of others) await pullAndCheck(member, 'team/private:1.0', image, 'alice:wonderland');
  });
});
