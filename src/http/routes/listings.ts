import type { Request, Response } from 'express';
import type { Page, PageOptions, Registry } from '../../cache/registry.js';
import { OciError } from '../../oci/errors.js';
import { labels, repositoryRequest, requesterCredentials, staleWarning } from '../request-context.js';

const MAX_PAGE = 10_000;

/** Reads `n` and `last` (distribution-spec "Listing tags"); a bad `n` is a clear 400, not a silent default. */
function pageOptions(req: Request): PageOptions {
  const { n, last } = req.query;
  let size: number | undefined;
  if (n !== undefined) {
    size = Number(n);
    if (typeof n !== 'string' || !/^\d+$/.test(n) || size > MAX_PAGE) {
      throw new OciError('PAGINATION_NUMBER_INVALID', `n must be a whole number from 0 to ${MAX_PAGE}`, { detail: { n } });
    }
  }
  return { n: size, last: typeof last === 'string' ? last : undefined };
}

/**
 * RFC 8288 `Link` to the next page, as distribution sends it: on our own origin and path
 * (containerd follows nothing else), keeping `ns=` so the next page reaches the same upstream.
 */
function setNextLink(req: Request, res: Response, page: Page<string>, n: number | undefined): void {
  const lastItem = page.items[page.items.length - 1];
  if (!page.hasMore || lastItem === undefined) return;
  const ns = req.query['ns'];
  const query = new URLSearchParams({ ...(n !== undefined && { n: String(n) }), last: lastItem, ...(typeof ns === 'string' && ns !== '' && { ns }) });
  res.setHeader('link', `<${req.path}?${query}>; rel="next"`);
}

/** `GET /v2/<name>/tags/list`: the upstream's list, or the cached tags while it is down. */
export function createTagsHandler(registry: Registry) {
  return async (req: Request, res: Response): Promise<void> => {
    labels(res).kind = 'tags';
    const name = (req.params as Record<string, string>)['0'] ?? '';
    const options = pageOptions(req);
    const page = await registry.listTags(repositoryRequest(req, name), { ...options, credentials: requesterCredentials(res) });
    if (page.staleBecause) res.setHeader('warning', staleWarning(page.staleBecause));
    setNextLink(req, res, page, options.n);
    res.json({ name, tags: page.items });
  };
}

/** `GET /v2/_catalog`: the repositories this cache holds content for. */
export function createCatalogHandler(registry: Registry) {
  return async (req: Request, res: Response): Promise<void> => {
    labels(res).kind = 'catalog';
    const options = pageOptions(req);
    const page = await registry.listRepositories(options, requesterCredentials(res));
    setNextLink(req, res, page, options.n);
    res.json({ repositories: page.items });
  };
}
