import type { Credentials } from '../config/credentials.js';
import type { Logger } from '../logger.js';
import { OciError } from '../oci/errors.js';
import type { MetadataIndex, RepositoryRecord } from '../storage/metadata-index.js';
import { UpstreamError } from '../upstream/upstream-error.js';
import { isUpstreamOutage } from './tag-freshness.js';

/** Asks the upstream, cheaply (a HEAD), whether these credentials may read the content in question. */
export type AccessProbe = (credentials: Credentials | undefined) => Promise<unknown>;

/** Configured credentials of one upstream. */
export interface ConfiguredCredentials {
  readonly credentials: Credentials;
  /** Anyone who reaches pullthrough may read what these can read. */
  readonly isShared: boolean;
}

/**
 * Who may read what. The model (README "Security"):
 * - A repository is public once the upstream served it to an anonymous request; content is
 *   public when a public repository holds it.
 * - Anything else is served only to a requester whose own credentials the upstream accepted for
 *   that repository (checked with a HEAD, the answer kept for `decisionTtlMs`), or to everyone
 *   when the upstream's configured credentials are marked shared.
 * - With the upstream unreachable or offline, only credentials it accepted before (same hash,
 *   this process) are taken; nobody else gets the bytes.
 */
export interface AccessPolicy {
  /** What to send upstream for this requester: its own credentials; else configured ones where that reveals nothing private. */
  upstreamCredentials(link: RepositoryRecord, requester: Credentials | undefined): Credentials | undefined;
  /** Throws OciError UNAUTHORIZED unless the requester may read `link` (a tag's repository). */
  authorizeRepository(link: RepositoryRecord, requester: Credentials | undefined, probe: AccessProbe, isOffline: boolean): Promise<void>;
  /** The same for one digest asked for through `link`: it must also be content of that repository. */
  authorizeContent(link: RepositoryRecord, digest: string, requester: Credentials | undefined, probe: AccessProbe, isOffline: boolean): Promise<void>;
  /** The upstream served `link` to these credentials (undefined: to an anonymous request). */
  recordSuccess(link: RepositoryRecord, used: Credentials | undefined): void;
  /** Whether cached content of `link` may be shown without asking (for listings while the upstream is down). */
  isReadableWithoutUpstream(link: RepositoryRecord, requester: Credentials | undefined): boolean;
}

export function createAccessPolicy(
  options: { decisionTtlMs: number; configured: (host: string) => ConfiguredCredentials | undefined },
  deps: { index: MetadataIndex; now: () => number; logger: Logger },
): AccessPolicy {
  /** `upstream\0repository\0credential id` → when the upstream last accepted it. Bounded; in memory only. */
  const verified = new Map<string, number>();
  const MAX_DECISIONS = 50_000;
  const key = (link: RepositoryRecord, credentials: Credentials) => `${link.upstream}\0${link.repository}\0${credentials.id}`;

  // A yes to "public?" does not turn into a no, so it is remembered and the hot path skips SQLite.
  const knownPublic = new Set<string>();
  const MAX_KNOWN = 100_000;
  const remember = (key: string) => {
    if (knownPublic.size >= MAX_KNOWN) knownPublic.clear();
    knownPublic.add(key);
  };
  function isPublicRepository(link: RepositoryRecord): boolean {
    const key = `r\0${link.upstream}\0${link.repository}`;
    if (knownPublic.has(key)) return true;
    const isPublic = deps.index.isPublic(link);
    if (isPublic) remember(key);
    return isPublic;
  }
  function isPublicContent(digest: string): boolean {
    if (knownPublic.has(digest)) return true;
    const isPublic = deps.index.isPublicContent(digest);
    if (isPublic) remember(digest);
    return isPublic;
  }

  function isOpen(link: RepositoryRecord): boolean {
    return isPublicRepository(link) || options.configured(link.upstream)?.isShared === true;
  }

  function deny(link: RepositoryRecord, requester: Credentials | undefined, why: string): OciError {
    deps.logger.info({ upstream: link.upstream, repository: link.repository, hasCredentials: requester !== undefined, why }, 'access denied');
    return new OciError('UNAUTHORIZED', `${requester ? 'these credentials are' : 'credentials are'} needed for ${link.upstream}/${link.repository}: ${why}`);
  }

  /**
   * `mayReuse`: a recent yes for this repository answers for anything linked to it. Content not
   * linked to it is always asked about, since access to a repository says nothing about a digest
   * cached for another one.
   */
  async function check(link: RepositoryRecord, requester: Credentials | undefined, probe: AccessProbe, isOffline: boolean, mayReuse: boolean): Promise<void> {
    const lastVerified = requester && mayReuse ? verified.get(key(link, requester)) : undefined;
    if (lastVerified !== undefined && deps.now() - lastVerified < options.decisionTtlMs) return;
    if (isOffline) {
      if (lastVerified !== undefined) return;
      throw deny(link, requester, 'the upstream is offline and has not vouched for them');
    }
    try {
      await probe(requester);
    } catch (err) {
      if (isUpstreamOutage(err)) {
        if (lastVerified !== undefined) return;
        throw deny(link, requester, `the upstream cannot be asked now (${err.message})`);
      }
      if (err instanceof UpstreamError && (err.kind === 'auth' || err.isNotFound)) {
        if (requester) verified.delete(key(link, requester));
        throw deny(link, requester, 'the upstream does not grant access');
      }
      throw err;
    }
    policy.recordSuccess(link, requester);
  }

  const policy: AccessPolicy = {
    upstreamCredentials(link, requester) {
      if (requester) return requester;
      const configured = options.configured(link.upstream);
      // Configured credentials fetch for anonymous clients only what anonymous clients may read anyway
      // (their rate limit is better); otherwise the first fetch would hand private bytes to anyone.
      return configured && (configured.isShared || isPublicRepository(link)) ? configured.credentials : undefined;
    },
    async authorizeRepository(link, requester, probe, isOffline) {
      if (isOpen(link)) return;
      await check(link, requester, probe, isOffline, true);
    },
    async authorizeContent(link, digest, requester, probe, isOffline) {
      if (isPublicContent(digest)) return;
      if (deps.index.isLinked(link, digest)) {
        if (isOpen(link)) return;
        await check(link, requester, probe, isOffline, true);
        return;
      }
      // Cached under another repository only: the upstream must confirm this one holds it too.
      if (isOffline) throw deny(link, requester, 'the content is cached for another repository and the upstream is offline');
      await check(link, requester, probe, false, false);
      deps.index.linkRepository(link, digest);
    },
    recordSuccess(link, used) {
      if (!used) {
        deps.index.markPublic(link);
        return;
      }
      if (verified.size >= MAX_DECISIONS) {
        const oldest = verified.keys().next().value;
        if (oldest !== undefined) verified.delete(oldest);
      }
      verified.delete(key(link, used));
      verified.set(key(link, used), deps.now());
    },
    isReadableWithoutUpstream(link, requester) {
      return isOpen(link) || (requester !== undefined && verified.has(key(link, requester)));
    },
  };
  return policy;
}
