import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { once } from 'node:events';
import { randomUUID, sign } from 'node:crypto';
import { readFile } from 'node:fs/promises';

export interface TokenIssuer {
  readonly realm: string;
  readonly service: string;
  readonly issuer: string;
  /** A token with push and pull on every repository, for seeding the registry. */
  adminToken(repositories: readonly string[]): string;
  close(): Promise<void>;
}

const b64url = (value: Buffer | string) => Buffer.from(value).toString('base64url');

/**
 * A token server for distribution's `auth: token`, like Docker Hub's: RS256 JWTs whose `x5c`
 * carries the signing certificate (trusted by the registry's rootcertbundle). Anonymous callers
 * get pull on `public/*` only; `users` get pull on what they ask for; wrong passwords get 401.
 */
export async function startTokenIssuer(options: { certPem: string; keyPem: string; users: Record<string, string> }): Promise<TokenIssuer> {
  const service = 'test-registry';
  const issuer = 'test-issuer';
  const cert = await readFile(options.certPem, 'utf8');
  const key = await readFile(options.keyPem, 'utf8');
  const der = cert.replace(/-----[^-]+-----/g, '').replace(/\s+/g, '');

  function token(subject: string, access: Array<{ type: string; name: string; actions: string[] }>): string {
    const now = Math.floor(Date.now() / 1000);
    const header = b64url(JSON.stringify({ typ: 'JWT', alg: 'RS256', x5c: [der] }));
    const claims = b64url(JSON.stringify({ iss: issuer, sub: subject, aud: service, exp: now + 300, nbf: now - 10, iat: now, jti: randomUUID(), access }));
    const signature = sign('sha256', Buffer.from(`${header}.${claims}`), key);
    return `${header}.${claims}.${b64url(signature)}`;
  }

  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://issuer');
    const scope = url.searchParams.get('scope') ?? '';
    const name = /^repository:([^:]+):/.exec(scope)?.[1] ?? '';
    let subject = '';
    const basic = /^Basic (.+)$/.exec(req.headers.authorization ?? '');
    if (basic) {
      const [user = '', password = ''] = Buffer.from(basic[1]!, 'base64').toString().split(':');
      if (options.users[user] !== password) {
        res.writeHead(401, { 'content-type': 'application/json' }).end('{"details":"incorrect username or password"}');
        return;
      }
      subject = user;
    }
    const mayPull = name !== '' && (subject !== '' || name.startsWith('public/'));
    const jwt = token(subject, mayPull ? [{ type: 'repository', name, actions: ['pull'] }] : []);
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ token: jwt, access_token: jwt, expires_in: 300 }));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    realm: `http://127.0.0.1:${(server.address() as AddressInfo).port}/token`,
    service,
    issuer,
    adminToken: (repositories) => token('admin', repositories.map((name) => ({ type: 'repository', name, actions: ['pull', 'push'] }))),
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
