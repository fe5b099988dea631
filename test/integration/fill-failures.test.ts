import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import { startFakeUpstream, type FakeUpstream } from '../fakes/fake-upstream.js';
import { makeRawBlob } from '../helpers/images.js';
import { startPullthrough, type RunningPullthrough } from '../helpers/pullthrough.js';

const REPO = 'library/app';

async function errorCode(response: Response): Promise<string | undefined> {
  return ((await response.json()) as { errors?: Array<{ code: string }> }).errors?.[0]?.code;
}

describe('fills that fail before their first byte, and shutdown', () => {
  let upstream: FakeUpstream;
  let cache: RunningPullthrough | undefined;

  before(async () => {
    upstream = await startFakeUpstream();
  });
  afterEach(async () => {
    await cache?.close();
    cache = undefined;
  });
  after(async () => {
    await upstream.close();
  });

  const start = async () => (cache = await startPullthrough({ upstreams: [{ host: 'docker.io', url: upstream.url, default: true }] }));

  it('answers 503 UNAVAILABLE, not 500, when the upstream body breaks before a byte reached the client', async () => {
    const { url } = await start();
    const blob = makeRawBlob(1000);
    upstream.addBlob(blob);
    upstream.setFault(blob.digest, { type: 'drop', afterBytes: 0 });
    const response = await fetch(`${url}/v2/${REPO}/blobs/${blob.digest}`);
    assert.equal(response.status, 503);
    assert.equal(await errorCode(response), 'UNAVAILABLE');
  });

  it('answers 503 UNAVAILABLE, not 500, for a digest mismatch found before the first byte', async () => {
    const { url } = await start();
    // One byte, held back until verified: the mismatch is known before anything is sent.
    const blob = makeRawBlob(1);
    upstream.addBlob(blob);
    upstream.setFault(blob.digest, { type: 'corrupt' });
    const response = await fetch(`${url}/v2/${REPO}/blobs/${blob.digest}`);
    assert.equal(response.status, 503);
    assert.equal(await errorCode(response), 'UNAVAILABLE');
  });

  it('answers an upstream 403 with 403 DENIED, not 401 UNAUTHORIZED', async () => {
    const { url } = await start();
    const blob = makeRawBlob(10);
    upstream.addBlob(blob);
    upstream.setFault(blob.digest, { type: 'status', status: 403 });
    const response = await fetch(`${url}/v2/${REPO}/blobs/${blob.digest}`);
    assert.equal(response.status, 403);
    assert.equal(await errorCode(response), 'DENIED');
  });

  it('cuts in-flight upstream bodies once the shutdown grace has passed, instead of waiting for them forever', { timeout: 30_000 }, async () => {
    const running = await start();
    cache = undefined;
    const blob = makeRawBlob(10_000);
    upstream.addBlob(blob);
    // A body that never ends.
    upstream.setFault(blob.digest, { type: 'gate', beforeBytes: 100, release: new Promise(() => undefined) });
    const response = await fetch(`${running.url}/v2/${REPO}/blobs/${blob.digest}`);
    assert.equal(response.status, 200);
    const body = response.arrayBuffer().catch(() => 'cut');
    await running.app.close({ graceMs: 200 });
    assert.equal(await body, 'cut', 'the client is cut, never handed a short body as complete');
  });
});
