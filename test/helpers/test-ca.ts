import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { requireBinary, runCommand } from './processes.js';

export interface TestCertificates {
  readonly dir: string;
  /** A directory holding only `ca.crt`, as containers/image's --cert-dir expects. */
  readonly caDir: string;
  readonly caCert: string;
  readonly caKey: string;
  readonly serverCert: string;
  readonly serverKey: string;
}

/** A throwaway CA and a server certificate for 127.0.0.1 and localhost, made with openssl. */
export async function makeTestCertificates(): Promise<TestCertificates> {
  await requireBinary('openssl');
  const dir = await mkdtemp(path.join(tmpdir(), 'pullthrough-tls-'));
  const caDir = path.join(dir, 'ca');
  await mkdir(caDir);
  const p = (name: string) => path.join(dir, name);
  const caCert = path.join(caDir, 'ca.crt');
  await writeFile(p('server.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n');
  await runCommand('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', p('ca.key'), '-out', caCert, '-days', '2', '-subj', '/CN=pullthrough test CA']);
  await runCommand('openssl', ['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', p('server.key'), '-out', p('server.csr'), '-subj', '/CN=127.0.0.1']);
  await runCommand('openssl', ['x509', '-req', '-in', p('server.csr'), '-CA', caCert, '-CAkey', p('ca.key'), '-CAcreateserial', '-out', p('server.crt'), '-days', '2', '-extfile', p('server.ext')]);
  return { dir, caDir, caCert, caKey: p('ca.key'), serverCert: p('server.crt'), serverKey: p('server.key') };
}
