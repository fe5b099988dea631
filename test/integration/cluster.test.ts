import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import { rendezvousOrder } from '../../src/upstream/cluster-members.js';
import { signPeerRequest } from '../../src/upstream/peer-signature.js';
import { startFakeUpstream, type FakeUpstream } from '../fakes/fake-upstream.js';
import { makeImage, makeRawBlob } from '../helpers/images.js';
import { freePort } from '../helpers/processes.js';
import { metricValue, startPullthrough, type RunningPullthrough } from '../helpers/pullthrough.js';

const REPO = 'library/app';
const SECRET = 'a-cluster-secret-of-some-length';

async function get(url: string, init: RequestInit = {}): Promise<{ status: number; body: Buffer }> {
  const response = await fetch(url, init);
  return { status: response.status, body: Buffer.from(await response.arrayBuffer()) };
}

const basic = (user: string, password: string) => ({ authorization: `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}` });

describe('cluster: members share one upstream fetch per blob', () => {
  let upstream: FakeUpstream;
  let dir: string;
  let secretFile: string;
  let members: RunningPullthrough[] = [];
  let urls: string[] = [];

  before(async () => {
    upstream = await startFakeUpstream({ privateRepositories: ['team/private'], users: { alice: 'wonderland' } });
    dir = await mkdtemp(path.join(tmpdir(), 'pullthrough-cluster-'));
    secretFile = path.join(dir, 'secret');
    await writeFile(secretFile, `${SECRET}\n`);
  });
  after(async () => {
    await upstream.close();
    await rm(dir, { recursive: true, force: true });
  });
  afterEach(async () => {
    await Promise.all(members.map((m) => m.close().catch(() => undefined)));
    members = [];
  });

  async function startCluster(count: number, cluster: Record<string, unknown> = {}): Promise<void> {
    const ports = await Promise.all(Array.from({ length: count }, () => freePort()));
    urls = ports.map((port) => `http://127.0.0.1:${port}`);
    members = await Promise.all(
      ports.map((port, i) =>
        startPullthrough({
          upstreams: [{ host: 'docker.io', url: upstream.url, default: true }],
          extra: { listen: `127.0.0.1:${port}`, cluster: { self: urls[i], peers: urls, secretFile, ...cluster } },
        }),
      ),
    );
  }

  /** The member that owns `digest`, and the others in placement order. */
  function byOwnership(digest: string): RunningPullthrough[] {
    const order = rendezvousOrder(urls.map((url) => ({ url })), digest).map((m) => m.url);
    return order.map((url) => members[urls.indexOf(url)]!);
  }

  it('fetches a blob from the upstream once for the whole cluster; every member serves the exact bytes', async () => {
    await startCluster(3);
    const blob = makeRawBlob(2 * 1024 * 1024 + 3);
    upstream.addBlob(blob);
    const [owner, ...others] = byOwnership(blob.digest);
    // Non-owners first: each asks the owner, which fills from the upstream.
    for (const member of [...others, owner!]) {
      const got = await get(`${member.url}/v2/${REPO}/blobs/${blob.digest}`);
      assert.equal(got.status, 200);
      assert.ok(got.body.equals(blob.bytes));
    }
    assert.equal(upstream.count('GET', `/v2/${REPO}/blobs/${blob.digest}`), 1, 'one upstream GET for three members');
    for (const member of others) assert.equal(await metricValue(member.url, 'pullthrough_served_bytes_total', { source: 'peer' }), blob.bytes.length);
    assert.equal(await metricValue(owner!.url, 'pullthrough_served_bytes_total', { source: 'peer' }), 0);
    const status = (await (await fetch(`${owner!.url}/_pullthrough/status`)).json()) as { cluster: { self: string; members: Array<{ url: string; state: string }> } };
    assert.equal(status.cluster.self, urls[members.indexOf(owner!)]);
    assert.deepEqual(status.cluster.members.map((m) => m.state).sort(), ['self', 'up', 'up']);
    assert.equal(await metricValue(owner!.url, 'pullthrough_cluster_members', { state: 'up' }), 3);
  });

  it('takes manifests by digest from their owner too, verified; tags always from the upstream', async () => {
    await startCluster(3);
    const image = makeImage({ layerSizes: [1000] });
    upstream.addImage(REPO, 'v1', image);
    const [owner, ...others] = byOwnership(image.digest);
    for (const member of [...others, owner!]) {
      const got = await get(`${member.url}/v2/${REPO}/manifests/${image.digest}`, { headers: { accept: image.mediaType } });
      assert.equal(got.status, 200);
      assert.ok(got.body.equals(image.bytes));
    }
    assert.equal(upstream.count('GET', `/v2/${REPO}/manifests/${image.digest}`), 1, 'one manifest GET for three members');
    for (const member of members) assert.equal((await get(`${member.url}/v2/${REPO}/manifests/v1`, { headers: { accept: image.mediaType } })).status, 200);
    assert.equal(upstream.count('GET', `/v2/${REPO}/manifests/v1`), 3, 'each member asks the upstream for the tag');
  });

  it('answers peer requests only when signed with the cluster secret', async () => {
    await startCluster(2);
    const blob = makeRawBlob(1000);
    upstream.addBlob(blob);
    const pathAndQuery = `/_pullthrough/cluster/v1/blobs/${blob.digest}?${new URLSearchParams({ upstream: 'docker.io', repository: REPO })}`;
    assert.equal((await get(`${urls[0]}${pathAndQuery}`)).status, 401);
    const forged = signPeerRequest('not-the-secret-at-all', 'GET', pathAndQuery, Date.now());
    assert.equal((await get(`${urls[0]}${pathAndQuery}`, { headers: { 'x-pullthrough-cluster': forged } })).status, 401);
    const replayedOld = signPeerRequest(SECRET, 'GET', pathAndQuery, Date.now() - 5 * 60_000);
    assert.equal((await get(`${urls[0]}${pathAndQuery}`, { headers: { 'x-pullthrough-cluster': replayedOld } })).status, 401);
    const otherPath = signPeerRequest(SECRET, 'GET', pathAndQuery.replace('library%2Fapp', 'library%2Fother'), Date.now());
    assert.equal((await get(`${urls[0]}${pathAndQuery}`, { headers: { 'x-pullthrough-cluster': otherPath } })).status, 401);
    assert.equal(upstream.count('GET', `/v2/${REPO}/blobs/${blob.digest}`), 0, 'nothing was fetched for an unsigned request');
    const signed = await get(`${urls[0]}${pathAndQuery}`, { headers: { 'x-pullthrough-cluster': signPeerRequest(SECRET, 'GET', pathAndQuery, Date.now()) } });
    assert.equal(signed.status, 200);
    assert.ok(signed.body.equals(blob.bytes));
  });

  it('serves from the next member, then the upstream, when the owner is gone', async () => {
    await startCluster(3);
    const blob = makeRawBlob(300_000);
    upstream.addBlob(blob);
    const [owner, second, third] = byOwnership(blob.digest);
    await owner!.close();
    const got = await get(`${third!.url}/v2/${REPO}/blobs/${blob.digest}`);
    assert.equal(got.status, 200);
    assert.ok(got.body.equals(blob.bytes));
    assert.equal(upstream.count('GET', `/v2/${REPO}/blobs/${blob.digest}`), 1, 'the second in placement order filled it');
    const fromSecond = await get(`${second!.url}/v2/${REPO}/blobs/${blob.digest}`);
    assert.ok(fromSecond.body.equals(blob.bytes));
    assert.equal(upstream.count('GET', `/v2/${REPO}/blobs/${blob.digest}`), 1);
  });

  /**
   * A pull through `asker` of a blob `owner` owns: the owner gets the first MiB of the upstream
   * body and passes it on, then dies (its connections cut, as a kill would); resolves to what the
   * asker's client got.
   */
  async function pullWhileOwnerDies(owner: RunningPullthrough, asker: RunningPullthrough, blob: { digest: string }) {
    let release!: () => void;
    upstream.setFault(blob.digest, { type: 'gate', beforeBytes: 1024 * 1024, release: new Promise((resolve) => (release = resolve)) });
    const pending = get(`${asker.url}/v2/${REPO}/blobs/${blob.digest}`);
    const deadline = Date.now() + 10_000;
    while ((await metricValue(owner.url, 'pullthrough_fills_in_flight').catch(() => 0)) < 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    await new Promise((r) => setTimeout(r, 100));
    upstream.setFault(blob.digest, undefined);
    owner.app.server.closeAllConnections();
    await owner.close();
    release();
    return pending;
  }

  it('finishes a pull whose owner dies in the middle of the body, with the right bytes', async () => {
    await startCluster(3);
    const blob = makeRawBlob(4 * 1024 * 1024);
    upstream.addBlob(blob);
    const [owner, , asker] = byOwnership(blob.digest);
    const got = await pullWhileOwnerDies(owner!, asker!, blob);
    assert.equal(got.status, 200);
    assert.ok(got.body.equals(blob.bytes), 'the bytes after the cut came from another source');
  });

  it('goes on from the upstream with Range, at the offset reached, when the owner dies and no other member is left', async () => {
    await startCluster(2);
    const blob = makeRawBlob(4 * 1024 * 1024);
    upstream.addBlob(blob);
    const [owner, asker] = byOwnership(blob.digest);
    const got = await pullWhileOwnerDies(owner!, asker!, blob);
    assert.equal(got.status, 200);
    assert.ok(got.body.equals(blob.bytes));
    const ranged = upstream.requests.filter((r) => r.method === 'GET' && r.path === `/v2/${REPO}/blobs/${blob.digest}` && r.headers.range !== undefined);
    assert.equal(ranged.length, 1, 'the rest was asked for, not the whole blob again');
    assert.match(String(ranged[0]!.headers.range), /^bytes=[1-9]\d*-$/);
  });

  it('answers 503, not 401, for a blob only its owner holds while the upstream cannot be asked', async () => {
    await startCluster(3);
    const blob = makeRawBlob(100_000);
    upstream.addBlob(blob);
    const [owner, other] = byOwnership(blob.digest);
    assert.equal((await get(`${owner!.url}/v2/${REPO}/blobs/${blob.digest}`)).status, 200);
    upstream.setFault(blob.digest, { type: 'status', status: 503 });
    const refused = await get(`${other!.url}/v2/${REPO}/blobs/${blob.digest}`);
    assert.equal(refused.status, 503, 'the member cannot decide now: containerd tries its next host');
    assert.equal((await get(`${owner!.url}/v2/${REPO}/blobs/${blob.digest}`)).status, 200, 'the owner serves what it holds through the outage');
    upstream.setFault(blob.digest, undefined);
  });

  it("keeps private content private: alice's pull through one member is refused to anonymous on another", async () => {
    await startCluster(3);
    const blob = makeRawBlob(200_000);
    upstream.addBlob(blob);
    const privateUrl = (member: RunningPullthrough) => `${member.url}/v2/team/private/blobs/${blob.digest}`;
    const [owner, second, third] = byOwnership(blob.digest);
    const alice = await get(privateUrl(second!), { headers: basic('alice', 'wonderland') });
    assert.equal(alice.status, 200, 'alice reads it');
    assert.ok(alice.body.equals(blob.bytes));
    for (const member of [owner!, third!]) {
      const anonymous = await get(privateUrl(member));
      assert.equal(anonymous.status, 401, 'an anonymous client on another member is refused');
      assert.equal(anonymous.body.includes(blob.bytes.subarray(0, 64)), false);
      const wrong = await get(privateUrl(member), { headers: basic('alice', 'guess') });
      assert.equal(wrong.status, 401);
    }
  });
});
