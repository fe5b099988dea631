import { LRUCache } from 'lru-cache';
import type { Credentials } from '../config/credentials.js';
import type { Logger } from '../logger.js';
import { OciError } from '../oci/errors.js';
import { UpstreamError } from '../upstream/upstream-error.js';
import type { Route } from '../upstream/upstream-router.js';
import type { AccessPolicy } from './access-policy.js';
import { linkOf, paginate, type LocalRegistry } from './local-registry.js';
import type { PageOptions, ReadOptions, TagPage } from './registry.js';
import { SingleFlight } from './single-flight.js';
import { isUpstreamOutage, revalidationFailed } from './tag-freshness.js';

/**
 * Bounds on following an upstream's tags/list pages: pullthrough pages over the whole list
 * itself (the upstream's own page size and order are its business, and its `Link` is useless
 * to our clients). Past either bound the list is cut there, and the cut is logged.
 */
export const MAX_UPSTREAM_TAG_PAGES = 100;
export const MAX_UPSTREAM_TAGS = 100_000;
/**
 * A client paging through a long list asks for every page within seconds; each page would
 * otherwise re-read the upstream's whole list (100 upstream requests a page for 10,000 tags
 * on Docker Hub). The list is kept this long, for this many repositories, per credential identity.
 */
const TAG_LIST_TTL_MS = 30_000;
const MAX_TAG_LISTS = 64;

/** `tags/list` through the upstream: its whole list, paged here; the cached tags while it is down. */
export function createProxyTags(deps: { local: LocalRegistry; access: AccessPolicy; logger: Logger; now: () => number }) {
  const { access, local } = deps;
  // Aged by the injected clock, as everything of the cache is; the LRU bounds the count.
  const lists = new LRUCache<string, { at: number; tags: string[] }>({ max: MAX_TAG_LISTS });
  const flights = new SingleFlight<string[]>();

  /** The upstream's whole tag list, every page followed (bounded), sorted and without duplicates. */
  async function readUpstreamTags(route: Route, credentials: Credentials | undefined): Promise<string[]> {
    const tags = new Set<string>();
    let next: string | undefined;
    for (let pages = 0; ; pages++) {
      if (pages >= MAX_UPSTREAM_TAG_PAGES || tags.size >= MAX_UPSTREAM_TAGS) {
        deps.logger.warn({ upstream: route.upstream.host, repository: route.repository, pages, tags: tags.size }, 'tag list cut: the upstream has more pages than pullthrough follows');
        break;
      }
      const page = await route.upstream.listTagsPage(route.repository, { credentials, next });
      for (const tag of page.items) if (tags.size < MAX_UPSTREAM_TAGS) tags.add(tag);
      // A link back to a page already read would loop: the page count bounds that too.
      if (!page.next || page.next === next) break;
      next = page.next;
    }
    return [...tags].sort();
  }

  /** {@link readUpstreamTags}, shared by concurrent requests and kept for {@link TAG_LIST_TTL_MS}. */
  function allUpstreamTags(route: Route, credentials: Credentials | undefined): Promise<string[]> {
    const key = `${route.upstream.host}/${route.repository}|${credentials?.id ?? ''}`;
    const kept = lists.get(key);
    if (kept && deps.now() - kept.at < TAG_LIST_TTL_MS) return Promise.resolve(kept.tags);
    return flights.run(key, async () => {
      const tags = await readUpstreamTags(route, credentials);
      lists.set(key, { at: deps.now(), tags });
      return tags;
    }).promise;
  }

  return async function listTags(route: Route, { n, last, credentials: requester }: PageOptions & ReadOptions): Promise<TagPage> {
    const link = linkOf(route);
    try {
      return paginate(await allUpstreamTags(route, access.upstreamCredentials(link, requester)), { n, last });
    } catch (err) {
      if (err instanceof UpstreamError && err.isNotFound) throw new OciError('NAME_UNKNOWN', `repository ${route.repository} is not known to upstream ${err.upstream}`);
      if (!isUpstreamOutage(err) || !access.isReadableWithoutUpstream(link, requester)) throw err;
      // The upstream is down: the tags we have cached are the best answer we can give.
      const cached = paginate(local.readableTags(link, requester), { n, last });
      if (cached.items.length === 0 && last === undefined) throw err;
      return { ...cached, staleBecause: revalidationFailed(err) };
    }
  };
}
