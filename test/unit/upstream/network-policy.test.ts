import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { describe, it } from 'node:test';
import { createGuardedConnector, createNetworkPolicy, isAllowedHost, isPublicAddress } from '../../../src/upstream/network-policy.js';

describe('network policy', () => {
  it('tells public addresses from loopback, link-local, private, unspecified and mapped ones', () => {
    for (const address of ['1.1.1.1', '8.8.8.8', '2606:4700:4700::1111', '[2a00:1450::1]']) assert.equal(isPublicAddress(address), true, address);
    for (const address of ['127.0.0.1', '127.9.9.9', '::1', '169.254.169.254', 'fe80::1', '10.1.2.3', '172.16.0.1', '172.31.255.255', '192.168.1.1', '100.64.0.1', 'fd00::1', '0.0.0.0', '::', '::ffff:127.0.0.1', '::ffff:10.0.0.1', '224.0.0.1', 'not-an-ip']) {
      assert.equal(isPublicAddress(address), false, address);
    }
    assert.equal(isPublicAddress('172.32.0.1'), true, 'just outside 172.16/12');
  });

  it('opens listed private ranges, and judges host literals and localhost before any lookup', () => {
    const policy = createNetworkPolicy({ trustedOrigins: [], allowPrivate: ['10.20.0.0/16', 'fd00::/8'] });
    assert.equal(policy.isAllowedAddress('10.20.3.4'), true);
    assert.equal(policy.isAllowedAddress('10.21.0.1'), false);
    assert.equal(policy.isAllowedAddress('fd00::5'), true);
    assert.equal(isAllowedHost(policy, '10.20.3.4:5000'), true);
    assert.equal(isAllowedHost(policy, '127.0.0.1:5000'), false);
    assert.equal(isAllowedHost(policy, 'localhost:5000'), false);
    assert.equal(isAllowedHost(policy, '[::1]:5000'), false);
    assert.equal(isAllowedHost(policy, 'registry.example.com'), true, 'a name is judged when it resolves');
  });

  it('refuses a name that resolves to loopback at connect time, and connects to a trusted origin anywhere', async () => {
    const server = createServer((socket) => socket.end());
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const port = (server.address() as AddressInfo).port;
    try {
      const connect = (policy: ReturnType<typeof createNetworkPolicy>, hostname: string) =>
        new Promise<string>((resolve) => {
          createGuardedConnector(policy, { timeout: 2_000 })({ hostname, host: `${hostname}:${port}`, protocol: 'http:', port: String(port), servername: undefined as unknown as string }, (err, socket) => {
            socket?.destroy();
            resolve(err ? ((err as { code?: string }).code ?? err.message) : 'connected');
          });
        });
      const untrusted = createNetworkPolicy({ trustedOrigins: [], allowPrivate: [] });
      assert.equal(await connect(untrusted, 'localhost'), 'ERR_PULLTHROUGH_ADDRESS_DENIED', 'resolved, then refused');
      assert.equal(await connect(untrusted, '127.0.0.1'), 'ERR_PULLTHROUGH_ADDRESS_DENIED');
      const trusted = createNetworkPolicy({ trustedOrigins: [`http://127.0.0.1:${port}`], allowPrivate: [] });
      assert.equal(await connect(trusted, '127.0.0.1'), 'connected');
      const opened = createNetworkPolicy({ trustedOrigins: [], allowPrivate: ['127.0.0.0/8', '::1/128'] });
      assert.equal(await connect(opened, 'localhost'), 'connected');
    } finally {
      server.close();
    }
  });
});
