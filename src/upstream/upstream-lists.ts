import type { Dispatcher } from 'undici';
import { UpstreamError } from './upstream-error.js';

/** One page of an upstream list, and where its `Link: <…>; rel="next"` points (same origin only). */
export interface ListPage<T> {
  readonly items: readonly T[];
  /** Path and query of the next page on this upstream's origin; absent on the last page. */
  readonly next: string | undefined;
}

/**
 * One page of an upstream's referrers answer (distribution-spec "Listing Referrers"), or
 * `unsupported` when the upstream has no referrers API: 404 or 405 on the endpoint, or a 200
 * that is not an image index. `isRepositoryUnknown` marks a 404 saying NAME_UNKNOWN, which
 * tells nothing about the API itself.
 */
export type ReferrersPage =
  | { readonly kind: 'index'; readonly manifests: readonly unknown[]; readonly filtersApplied: readonly string[]; readonly next: string | undefined; readonly sizeBytes: number }
  | { readonly kind: 'unsupported'; readonly isRepositoryUnknown: boolean };

/** An error body is read this far to learn its code; the rest is dropped. */
const MAX_ERROR_BYTES = 64 * 1024;
/** A tags/list page larger than this is refused: at 128 characters a tag, that is over 30,000 tags. */
export const MAX_TAGS_PAGE_BYTES = 4 * 2 ** 20;

function headerValue(headers: Dispatcher.ResponseData['headers'], name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value[0] : value;
}

/**
 * The path and query of an RFC 8288 `rel="next"` link, when it stays on `base`'s origin under
 * `/v2/`: a link elsewhere is not followed (it would take our credentials, or us, anywhere).
 */
export function nextLinkPath(link: string | undefined, base: URL, current: URL): string | undefined {
  if (!link) return undefined;
  for (const part of link.split(',')) {
    const match = /^\s*<([^>]*)>\s*;(.*)$/.exec(part);
    if (!match || !/\brel="?next"?/i.test(match[2] ?? '')) continue;
    let url: URL;
    try {
      url = new URL(match[1] ?? '', current);
    } catch {
      return undefined;
    }
    if (url.origin !== base.origin || !url.pathname.startsWith('/v2/')) return undefined;
    return `${url.pathname}${url.search}`;
  }
  return undefined;
}

/** The whole body, or undefined once it passes `maxBytes` (the body is destroyed then). */
export async function readCapped(body: Dispatcher.ResponseData['body'], maxBytes: number): Promise<Buffer | undefined> {
  const chunks: Buffer[] = [];
  let length = 0;
  for await (const chunk of body) {
    length += (chunk as Buffer).length;
    if (length > maxBytes) return undefined;
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks, length);
}

function errorCodes(bytes: Buffer | undefined): unknown[] {
  try {
    return ((JSON.parse(bytes?.toString('utf8') ?? '') as { errors?: Array<{ code?: unknown }> }).errors ?? []).map((e) => e.code);
  } catch {
    return [];
  }
}

/** Reads a 200, 404 or 405 answer of the referrers endpoint. @throws UpstreamError 'invalid' for a body over `maxBytes`. */
export async function referrersPage(
  response: Dispatcher.ResponseData,
  context: { base: URL; current: URL; maxBytes: number; what: string; host: string },
): Promise<ReferrersPage> {
  if (response.statusCode !== 200) {
    const body = await readCapped(response.body, MAX_ERROR_BYTES).catch(() => undefined);
    return { kind: 'unsupported', isRepositoryUnknown: response.statusCode === 404 && errorCodes(body).includes('NAME_UNKNOWN') };
  }
  const bytes = await readCapped(response.body, context.maxBytes);
  if (!bytes) throw new UpstreamError('invalid', context.host, `${context.what} is over the ${context.maxBytes}-byte limit`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(bytes.toString('utf8'));
  } catch {
    return { kind: 'unsupported', isRepositoryUnknown: false };
  }
  const manifests = typeof parsed === 'object' && parsed !== null ? (parsed as { manifests?: unknown }).manifests : undefined;
  if (!Array.isArray(manifests)) return { kind: 'unsupported', isRepositoryUnknown: false };
  const filtersApplied = (headerValue(response.headers, 'oci-filters-applied') ?? '').split(',').map((f) => f.trim()).filter(Boolean);
  return { kind: 'index', manifests, filtersApplied, next: nextLinkPath(headerValue(response.headers, 'link'), context.base, context.current), sizeBytes: bytes.length };
}

/** Reads a 200 answer of tags/list. @throws UpstreamError 'invalid' for a page over {@link MAX_TAGS_PAGE_BYTES}. */
export async function tagsPage(response: Dispatcher.ResponseData, context: { base: URL; current: URL; what: string; host: string }): Promise<ListPage<string>> {
  const bytes = await readCapped(response.body, MAX_TAGS_PAGE_BYTES);
  if (!bytes) throw new UpstreamError('invalid', context.host, `${context.what}: a page is over the ${MAX_TAGS_PAGE_BYTES}-byte limit`);
  let body: { tags?: unknown } | undefined;
  try {
    body = JSON.parse(bytes.toString('utf8')) as { tags?: unknown } | undefined;
  } catch {
    body = undefined;
  }
  const tags = Array.isArray(body?.tags) ? body.tags.filter((t): t is string => typeof t === 'string') : [];
  return { items: tags, next: nextLinkPath(headerValue(response.headers, 'link'), context.base, context.current) };
}
