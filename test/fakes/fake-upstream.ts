import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { sha256, type Blob, type ImageIndex, type ImageManifest } from '../helpers/images.js';

/** A fault the fake applies to one blob or manifest, by digest or `repo:tag`. */
export type Fault =
  | { type: 'status'; status: number; headers?: Record<string, string> }
  /** Sends the full Content-Length, then cuts the connection after `afterBytes` (`once`: only the first time). */
  | { type: 'drop'; afterBytes: number; once?: boolean }
  /** Same length, one byte flipped: the digest no longer matches. */
  | { type: 'corrupt' }
  | { type: 'slow'; chunkBytes: number; delayMs: number }
  /** Sends the first `beforeBytes`, then waits for `release` before sending the rest (chunked with `noLength`). */
  | { type: 'gate'; beforeBytes: number; release: Promise<void>; noLength?: boolean }
  | { type: 'redirect'; location: string }
  /** No Content-Length: a chunked body. */
  | { type: 'no-length' }
  /** Waits before answering (HEAD included), so concurrent requests truly overlap. */
  | { type: 'delay'; ms: number }
  /** Answers with exactly this (a hostile upstream's idea of a manifest or blob). */
  | { type: 'raw'; status: number; headers?: Record<string, string>; body?: string | Buffer };

export interface RecordedRequest {
  readonly method: string;
  readonly path: string;
  readonly query: URLSearchParams;
  readonly headers: IncomingMessage['headers'];
}

export interface FakeUpstream {
  readonly url: string;
  /** `127.0.0.1:port`, as clients would write it in an image name. */
  readonly host: string;
  readonly requests: RecordedRequest[];
  /** TCP connections accepted so far. */
  readonly connections: () => number;
  /** Requests whose method and path match. */
  count(method: string, pathPattern: RegExp | string): number;
  addBlob(blob: Blob): void;
  addManifest(repository: string, manifest: Blob, tag?: string): void;
  /** Adds an image or index with all its blobs, tagged. */
  addImage(repository: string, tag: string, image: ImageManifest | ImageIndex): void;
  setFault(key: string, fault: Fault | undefined): void;
  /** Makes a repository need credentials from `users` (or public again). */
  setPrivate(repository: string, isPrivate: boolean): void;
  close(): Promise<void>;
}

export interface FakeUpstreamOptions {
  /** Require the Bearer token flow (Docker Hub's), with a token endpoint at /token. */
  readonly bearer?: boolean;
  /** Sent with every response (e.g. Docker Hub's ratelimit-remaining). */
  readonly responseHeaders?: Record<string, string>;
  /** Repositories that need HTTP Basic credentials from `users` (a Basic challenge otherwise). */
  readonly privateRepositories?: readonly string[];
  readonly users?: Record<string, string>;
  /** What a request with wrong credentials for a private repository gets: 401 with a challenge (default), or 404 as some registries answer. */
  readonly unauthorizedStatus?: 401 | 404;
  /** A lying upstream: HEAD of any blob digest answers 200, as if it held it. */
  readonly lieOnHead?: boolean;
  /** Manifests whose media type the request's Accept does not name (and no wildcard) answer 404, as distribution does. */
  readonly strictAccept?: boolean;
  /** Blobs are served only through repositories an image holding them was added to (as real registries do). */
  readonly scopedBlobs?: boolean;
  /** Runs before a request is handled (after it is recorded); a test can hold requests here. */
  readonly onRequest?: (req: RecordedRequest) => Promise<void> | void;
  /** Pages tags/list this many at a time when the client sends no `n`, as Docker Hub and ghcr.io do. */
  readonly tagPageSize?: number;
  /**
   * Implement the referrers API as distribution-spec v1.1 words it: an image index of the
   * repository's manifests whose `subject` is the digest, `artifactType` filtering with
   * `OCI-Filters-Applied`, pages of `pageSize` linked with `rel="next"`. Absent: the endpoint is
   * a 404, as on distribution 2.x and Docker Hub.
   */
  readonly referrers?: { readonly pageSize?: number; readonly filters?: boolean };
}

function sendError(res: ServerResponse, status: number, code: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify({ errors: [{ code, message: code.toLowerCase() }] }));
}

async function sendBody(req: IncomingMessage, res: ServerResponse, bytes: Buffer, mediaType: string, digest: string, fault: Fault | undefined) {
  const headers: Record<string, string> = { 'content-type': mediaType, 'docker-content-digest': digest, etag: `"${digest}"` };
  const range = /^bytes=(\d+)-(\d*)$/.exec(String(req.headers.range ?? ''));
  if (range && fault?.type !== 'drop') {
    // Blob resumption (RFC 9110 §14): what distribution and CDNs answer to `Range: bytes=N-`.
    const start = Number(range[1]);
    const end = range[2] ? Math.min(Number(range[2]), bytes.length - 1) : bytes.length - 1;
    if (req.headers['if-match'] !== undefined && req.headers['if-match'] !== headers.etag) return void res.writeHead(412).end();
    res.writeHead(206, { ...headers, 'content-range': `bytes ${start}-${end}/${bytes.length}`, 'content-length': String(end - start + 1) });
    return void res.end(req.method === 'HEAD' ? undefined : bytes.subarray(start, end + 1));
  }
  if (fault?.type !== 'no-length' && !(fault?.type === 'gate' && fault.noLength)) headers['content-length'] = String(bytes.length);
  res.writeHead(200, headers);
  if (req.method === 'HEAD') return void res.end();
  switch (fault?.type) {
    case 'drop':
      res.write(bytes.subarray(0, fault.afterBytes));
      await sleep(20);
      res.socket?.destroy();
      return;
    case 'corrupt': {
      const copy = Buffer.from(bytes);
      copy[copy.length - 1] = (copy[copy.length - 1] ?? 0) ^ 0xff;
      return void res.end(copy);
    }
    case 'slow':
      for (let offset = 0; offset < bytes.length; offset += fault.chunkBytes) {
        if (res.destroyed) return;
        res.write(bytes.subarray(offset, offset + fault.chunkBytes));
        await sleep(fault.delayMs);
      }
      return void res.end();
    case 'gate':
      res.write(bytes.subarray(0, fault.beforeBytes));
      await fault.release;
      return void res.end(bytes.subarray(fault.beforeBytes));
    default:
      res.end(bytes);
  }
}

/**
 * An in-process registry on a loopback port: serves what tests add, records every request
 * and injects faults (drops, wrong bytes, slow or gated bodies, statuses, redirects).
 */
export async function startFakeUpstream(options: FakeUpstreamOptions = {}): Promise<FakeUpstream> {
  const blobs = new Map<string, Blob>();
  const manifests = new Map<string, Blob>();
  const faults = new Map<string, Fault>();
  const requests: RecordedRequest[] = [];
  const privateRepositories = new Set(options.privateRepositories ?? []);
  const blobRepositories = new Map<string, Set<string>>();
  let tokens = 0;
  let url = '';

  const server: Server = createServer((req, res) => {
    for (const [name, value] of Object.entries(options.responseHeaders ?? {})) res.setHeader(name, value);
    const parsed = new URL(req.url ?? '/', 'http://fake');
    const recorded = { method: req.method ?? 'GET', path: parsed.pathname, query: parsed.searchParams, headers: req.headers };
    requests.push(recorded);
    void Promise.resolve(options.onRequest?.(recorded))
      .then(() => handle(req, res, parsed))
      .catch(() => res.destroy());
  });

  async function handle(req: IncomingMessage, res: ServerResponse, parsed: URL): Promise<void> {
    const path = parsed.pathname;
    if (path === '/token') {
      tokens += 1;
      res.writeHead(200, { 'content-type': 'application/json' });
      return void res.end(JSON.stringify({ token: `token-${tokens}`, expires_in: 300 }));
    }
    const referrersMatch = /^\/v2\/(.+)\/referrers\/([^/]+)$/.exec(path);
    if (referrersMatch && options.referrers && !options.bearer) {
      if (!isAuthorized(req, referrersMatch[1]!)) return sendError(res, 401, 'UNAUTHORIZED', { 'www-authenticate': 'Basic realm="fake"' });
      return sendReferrers(res, parsed, referrersMatch[1]!, referrersMatch[2]!, options.referrers);
    }
    const match = /^\/v2\/(.+)\/(manifests|blobs|tags)\/(.+)$/.exec(path);
    if (options.bearer && path.startsWith('/v2/') && !/^Bearer token-\d+$/.test(req.headers.authorization ?? '')) {
      const scope = match ? `repository:${match[1]}:pull` : '';
      return sendError(res, 401, 'UNAUTHORIZED', { 'www-authenticate': `Bearer realm="${url}/token",service="fake",scope="${scope}"` });
    }
    if (path === '/v2/' || path === '/v2') return void res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    if (!match) return sendError(res, 404, 'NOT_FOUND');
    const [, repository = '', kind, reference = ''] = match;
    if (privateRepositories.has(repository)) {
      const [user = '', password = ''] = Buffer.from(/^Basic (.+)$/.exec(req.headers.authorization ?? '')?.[1] ?? '', 'base64').toString().split(':');
      if (!user || options.users?.[user] !== password) {
        if (options.unauthorizedStatus === 404 && user) return sendError(res, 404, kind === 'blobs' ? 'BLOB_UNKNOWN' : 'MANIFEST_UNKNOWN');
        return sendError(res, 401, 'UNAUTHORIZED', { 'www-authenticate': 'Basic realm="fake"' });
      }
    }
    if (options.lieOnHead && kind === 'blobs' && req.method === 'HEAD') {
      return void res.writeHead(200, { 'content-length': '1000', 'docker-content-digest': reference }).end();
    }
    if (kind === 'tags') {
      const tags = [...manifests.keys()].filter((k) => k.startsWith(`${repository}:`) && !k.includes('@')).map((k) => k.slice(repository.length + 1));
      if (tags.length === 0) return sendError(res, 404, 'NAME_UNKNOWN');
      const last = parsed.searchParams.get('last');
      const n = parsed.searchParams.get('n') ?? (options.tagPageSize === undefined ? null : String(options.tagPageSize));
      const after = tags.sort().filter((t) => last === null || t > last);
      const page = n === null ? after : after.slice(0, Number(n));
      const link = page.length < after.length ? { link: `</v2/${repository}/tags/list?n=${n}&last=${page.at(-1)}>; rel="next"` } : {};
      res.writeHead(200, { 'content-type': 'application/json', ...link });
      return void res.end(JSON.stringify({ name: repository, tags: page }));
    }
    const key = kind === 'manifests' ? (reference.includes(':') ? `${repository}@${reference}` : `${repository}:${reference}`) : reference;
    const faultKey = kind === 'manifests' && !reference.includes(':') ? `${repository}:${reference}` : reference;
    const fault = faults.get(faultKey);
    if (fault?.type === 'drop' && fault.once) faults.delete(faultKey);
    if (fault?.type === 'delay') await sleep(fault.ms);
    if (fault?.type === 'status') return sendError(res, fault.status, `STATUS_${fault.status}`, fault.headers);
    if (fault?.type === 'redirect') return void res.writeHead(307, { location: fault.location }).end();
    if (fault?.type === 'raw') return void res.writeHead(fault.status, fault.headers ?? {}).end(req.method === 'HEAD' ? undefined : fault.body);
    const isOutOfScope = options.scopedBlobs && kind === 'blobs' && !blobRepositories.get(reference)?.has(repository);
    const content = kind === 'manifests' ? manifests.get(key) : isOutOfScope ? undefined : blobs.get(reference);
    if (!content) return sendError(res, 404, kind === 'manifests' ? 'MANIFEST_UNKNOWN' : 'BLOB_UNKNOWN');
    if (options.strictAccept && kind === 'manifests') {
      const accepted = String(req.headers.accept ?? '').split(',').map((t) => t.split(';')[0]?.trim());
      if (!accepted.includes(content.mediaType) && !accepted.includes('*/*')) return sendError(res, 404, 'MANIFEST_UNKNOWN');
    }
    const isManifest = kind === 'manifests';
    await sendBody(req, res, content.bytes, isManifest ? content.mediaType : 'application/octet-stream', content.digest, fault);
  }

  /** For the referrers endpoint: the same Basic check as manifests and blobs. */
  function isAuthorized(req: IncomingMessage, repository: string): boolean {
    if (!privateRepositories.has(repository)) return true;
    const [user = '', password = ''] = Buffer.from(/^Basic (.+)$/.exec(req.headers.authorization ?? '')?.[1] ?? '', 'base64').toString().split(':');
    return user !== '' && options.users?.[user] === password;
  }

  function sendReferrers(res: ServerResponse, parsed: URL, repository: string, subject: string, api: NonNullable<FakeUpstreamOptions['referrers']>): void {
    const fault = faults.get(`referrers:${subject}`);
    if (fault?.type === 'status') return sendError(res, fault.status, `STATUS_${fault.status}`, fault.headers);
    const artifactType = parsed.searchParams.get('artifactType');
    const referrers = new Map<string, Record<string, unknown>>();
    for (const [key, manifest] of manifests) {
      if (!key.startsWith(`${repository}@`)) continue;
      const body = JSON.parse(manifest.bytes.toString()) as { subject?: { digest?: string }; artifactType?: string; config?: { mediaType?: string }; annotations?: Record<string, string> };
      if (body.subject?.digest !== subject) continue;
      const type = body.artifactType ?? body.config?.mediaType;
      if (artifactType !== null && api.filters && type !== artifactType) continue;
      referrers.set(manifest.digest, { mediaType: manifest.mediaType, digest: manifest.digest, size: manifest.bytes.length, artifactType: type, ...(body.annotations && { annotations: body.annotations }) });
    }
    const all = [...referrers.values()].sort((a, b) => String(a['digest']).localeCompare(String(b['digest'])));
    const start = Number(parsed.searchParams.get('page') ?? '0');
    const size = api.pageSize ?? all.length;
    const page = all.slice(start, start + size);
    const headers: Record<string, string> = { 'content-type': 'application/vnd.oci.image.index.v1+json' };
    if (artifactType !== null && api.filters) headers['oci-filters-applied'] = 'artifactType';
    if (start + size < all.length) {
      const next = new URLSearchParams({ page: String(start + size), ...(artifactType !== null && { artifactType }) });
      headers['link'] = `</v2/${repository}/referrers/${subject}?${next}>; rel="next"`;
    }
    res.writeHead(200, headers);
    res.end(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: page }));
  }

  let connections = 0;
  server.on('connection', () => {
    connections += 1;
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  url = `http://127.0.0.1:${port}`;

  const fake: FakeUpstream = {
    url,
    host: `127.0.0.1:${port}`,
    requests,
    connections: () => connections,
    count(method, pattern) {
      return requests.filter((r) => r.method === method && (typeof pattern === 'string' ? r.path === pattern : pattern.test(r.path))).length;
    },
    addBlob(blob) {
      blobs.set(blob.digest, blob);
    },
    addManifest(repository, manifest, tag) {
      manifests.set(`${repository}@${manifest.digest}`, manifest);
      if (tag) manifests.set(`${repository}:${tag}`, manifest);
    },
    addImage(repository, tag, image) {
      const images = 'images' in image ? image.images : [image];
      for (const m of images) {
        fake.addManifest(repository, m);
        for (const b of [m.config, ...m.layers]) {
          fake.addBlob(b);
          blobRepositories.set(b.digest, (blobRepositories.get(b.digest) ?? new Set()).add(repository));
        }
      }
      fake.addManifest(repository, image, tag);
    },
    setFault(key, fault) {
      if (fault) faults.set(key, fault);
      else faults.delete(key);
    },
    setPrivate(repository, isPrivate) {
      if (isPrivate) privateRepositories.add(repository);
      else privateRepositories.delete(repository);
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  return fake;
}

export { sha256 };
