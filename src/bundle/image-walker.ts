import { forEachConcurrently } from '../concurrency.js';
import { parseDigest } from '../oci/digest.js';
import { formatImageReference, type ImageReference } from '../oci/image-reference.js';
import { checkManifestDigest, manifestReferences, type Descriptor } from '../oci/manifest.js';
import { isIndexMediaType, MANIFEST_MEDIA_TYPES } from '../oci/media-types.js';

/** `os/architecture[/variant]`, as in `--platform linux/arm64/v8`. */
export interface Platform {
  readonly os: string;
  readonly architecture: string;
  readonly variant?: string | undefined;
}

/** Which platforms of a multi-platform image to take. */
export type PlatformChoice = readonly Platform[] | 'all';

export interface WalkedManifest {
  readonly digest: string;
  readonly mediaType: string;
  readonly bytes: Buffer;
}

/** Everything one image reference reached: its root manifest, the manifests chosen below it, their blobs. */
export interface WalkedImage {
  readonly reference: ImageReference;
  readonly root: WalkedManifest;
  readonly manifests: readonly WalkedManifest[];
  readonly blobs: readonly Descriptor[];
}

export interface WalkProgress {
  readonly bytesDone: number;
  readonly bytesTotal: number;
}

/** Reads `linux/amd64` or `linux/arm/v7`. @throws Error naming the expected form. */
export function parsePlatform(text: string): Platform {
  const [os, architecture, variant, extra] = text.trim().split('/');
  if (!os || !architecture || extra !== undefined) throw new Error(`expected a platform such as linux/amd64 or linux/arm/v7, got ${JSON.stringify(text)}`);
  return { os, architecture, variant };
}

/** The platform this machine runs, in OCI's words. */
export function hostPlatform(arch: string): Platform {
  const architecture = ({ x64: 'amd64', arm64: 'arm64', arm: 'arm', ppc64: 'ppc64le', s390x: 's390x', ia32: '386' } as Record<string, string>)[arch] ?? arch;
  return { os: 'linux', architecture };
}

function matches(choice: PlatformChoice, platform: unknown): boolean {
  if (choice === 'all') return true;
  const p = (platform ?? {}) as Partial<Platform>;
  return choice.some((want) => want.os === p.os && want.architecture === p.architecture && (want.variant === undefined || want.variant === p.variant));
}

/**
 * Pulls one image through a pullthrough server over its own registry API (`/v2/<registry>/<repo>/…`),
 * reading every blob to the end, which fills the server's cache exactly as a client pull would.
 * Manifests are verified against their digests here too.
 * @throws Error describing the first failed request.
 */
export async function walkImage(
  baseUrl: string,
  reference: ImageReference,
  options: { platforms: PlatformChoice; concurrency?: number; onProgress?: (progress: WalkProgress) => void; signal?: AbortSignal },
): Promise<WalkedImage> {
  const name = `${reference.registry}/${reference.repository}`;
  const what = formatImageReference(reference);

  async function getManifest(ref: string, expected?: string): Promise<WalkedManifest> {
    const response = await fetch(`${baseUrl}/v2/${name}/manifests/${ref}`, { headers: { accept: MANIFEST_MEDIA_TYPES.join(', ') }, signal: options.signal ?? null });
    const body = Buffer.from(await response.arrayBuffer());
    if (!response.ok) throw new Error(`${what}: manifest ${ref}: ${response.status} ${describeError(body)}`);
    const { digest, mismatch } = checkManifestDigest(body, expected === undefined ? undefined : parseDigest(expected), response.headers.get('docker-content-digest') ?? undefined);
    if (mismatch !== undefined) throw new Error(`${what}: manifest ${ref} does not match its digest ${mismatch}`);
    return { digest, mediaType: response.headers.get('content-type') ?? '', bytes: body };
  }

  const root = await getManifest(reference.digest?.value ?? reference.tag ?? 'latest', reference.digest?.value);
  const manifests: WalkedManifest[] = [root];
  if (isIndexMediaType(root.mediaType)) {
    const children = manifestReferences(root.bytes, root.mediaType).manifests;
    const chosen = children.filter((child) => matches(options.platforms, child.platform));
    if (chosen.length === 0) throw new Error(`${what}: no manifest for the requested platform(s) among ${children.length}`);
    for (const child of chosen) manifests.push(await getManifest(child.digest, child.digest));
  }
  const blobs = [...new Map(manifests.flatMap((m) => manifestReferences(m.bytes, m.mediaType).blobs).map((b) => [b.digest, b])).values()];

  const bytesTotal = blobs.reduce((sum, b) => sum + b.size, 0);
  let bytesDone = 0;
  const queue = [...blobs];
  await forEachConcurrently(() => queue.shift(), options.concurrency ?? 3, async (blob) => {
    const response = await fetch(`${baseUrl}/v2/${name}/blobs/${blob.digest}`, { signal: options.signal ?? null });
    if (!response.ok || !response.body) throw new Error(`${what}: blob ${blob.digest}: ${response.status} ${describeError(Buffer.from(await response.arrayBuffer()))}`);
    let received = 0;
    for await (const chunk of response.body) {
      received += chunk.length;
      bytesDone += chunk.length;
      options.onProgress?.({ bytesDone, bytesTotal });
    }
    if (received !== blob.size) throw new Error(`${what}: blob ${blob.digest}: ${received} bytes, the manifest says ${blob.size}`);
  });
  options.onProgress?.({ bytesDone: bytesTotal, bytesTotal });
  return { reference, root, manifests, blobs };
}

function describeError(body: Buffer): string {
  try {
    const parsed = JSON.parse(body.toString()) as { errors?: Array<{ code?: string; message?: string }> };
    const first = parsed.errors?.[0];
    if (first) return `${first.code ?? ''} ${first.message ?? ''}`.trim();
  } catch {
    // Not an OCI error body: say nothing more than the status.
  }
  return '';
}
