import { LRUCache } from 'lru-cache';
import type { Credentials } from '../config/credentials.js';
import type { Logger } from '../logger.js';
import { OciError } from '../oci/errors.js';
import type { ContentIndex, AccessProofIndex, RepositoryRecord } from '../storage/metadata-index.js';
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
 * - Every yes is a proof the upstream gave, for one (upstream, repository) and one requester:
 *   "anonymous may read it" (kept in the index) or "credential identity X may read it" (kept
 *   in memory). A proof is fresh for the upstream's `accessTtl`; a stale one is asked again
 *   with a HEAD. Only while the upstream cannot be asked (outage, offline) is a stale proof taken.
 * - Content is readable through a repository when it is linked to that repository (fetched for
 *   it, or confirmed there by the upstream) and the requester holds a proof for the repository;
 *   or when a repository of the same upstream holding it has a fresh anonymous proof.
 * - Callers serve content only through an upstream that delivered it itself (`isHeldBy`): one
 *   upstream never vouches for another's bytes.
 * - Configured credentials marked shared make everything of that upstream readable by anyone.
 */
export interface AccessPolicy {
  /** What to send upstream for this requester: its own credentials; else configured ones where that reveals nothing private. */
  upstreamCredentials(link: RepositoryRecord, requester: Credentials | undefined): Credentials | undefined;
  /**
   * Throws OciError UNAUTHORIZED unless the requester may read `link` (a tag's repository, and
   * `digest`, what the tag points at): on a fresh proof, else on the upstream's answer to `probe`.
   */
  authorizeRepository(link: RepositoryRecord, requester: Credentials | undefined, probe: AccessProbe, options?: { digest?: string }): Promise<void>;
  /**
   * The same for one digest asked for through `link`, which must be content of that repository:
   * linked to it, or confirmed there by `probe`. The caller has checked that `link.upstream`
   * holds the digest (or is delivering it: `isLinked` then says whether it is for this repository).
   * `outageIsUnavailable`: when the upstream cannot be asked and no proof at hand will do, throw
   * the outage (a 503) instead of refusing: for content only the upstream's yes could release.
   */
  authorizeContent(
    link: RepositoryRecord,
    digest: string,
    requester: Credentials | undefined,
    probe: AccessProbe,
    options?: { isLinked?: boolean; outageIsUnavailable?: boolean },
  ): Promise<void>;
  /** {@link authorizeRepository} without the upstream (offline): on the proofs at hand, of any age. */
  authorizeRepositoryLocally(link: RepositoryRecord, requester: Credentials | undefined, options?: { digest?: string }): void;
  /** {@link authorizeContent} without the upstream (offline): on the proofs at hand, of any age. */
  authorizeContentLocally(link: RepositoryRecord, digest: string, requester: Credentials | undefined): void;
  /** The upstream served `link` to these credentials (undefined: to an anonymous request). */
  recordSuccess(link: RepositoryRecord, used: Credentials | undefined): void;
  /** Whether cached content of `link` may be shown without asking (listings while the upstream is down or offline). */
  isReadableWithoutUpstream(link: RepositoryRecord, requester: Credentials | undefined, digest?: string): boolean;
  /**
   * Whether the requester may see `link`'s tags and digests without asking (the status page): on a
   * fresh proof only, so a repository that turned private drops out within `accessTtl` even if no
   * anonymous request asks again; proofs of any age while offline.
   */
  isVisible(link: RepositoryRecord, requester: Credentials | undefined, isOffline: boolean): boolean;
}

/** Credential proofs kept at once; the least recently used go first. */
const MAX_CREDENTIAL_PROOFS = 50_000;
/** How long a refusal of the upstream (401/403) is repeated to the same requester without asking again, and how many are kept. */
const REFUSAL_MEMORY_MS = 5_000;
const MAX_REFUSALS = 10_000;

export function createAccessPolicy(
  options: { accessTtlMs: (upstreamHost: string) => number; configured: (host: string) => ConfiguredCredentials | undefined },
  deps: { index: ContentIndex & AccessProofIndex; now: () => number; logger: Logger },
): AccessPolicy {
  /** `upstream\0repository\0credential id` → when the upstream last accepted it. In memory only. */
  const verified = new LRUCache<string, number>({ max: MAX_CREDENTIAL_PROOFS });
  /** `upstream\0repository\0credential id` → until when a refusal of the upstream is repeated without asking it. */
  const refused = new LRUCache<string, number>({ max: MAX_REFUSALS });
  const key = (link: RepositoryRecord, credentials: Credentials) => `${link.upstream}\0${link.repository}\0${credentials.id}`;

  // A proof from the future (the clock stepped back) is not fresh: its age is unknown.
  const isFresh = (provenAt: number | undefined, link: RepositoryRecord) => {
    const age = provenAt === undefined ? -1 : deps.now() - provenAt;
    return age >= 0 && age < options.accessTtlMs(link.upstream);
  };
  const isShared = (link: RepositoryRecord) => options.configured(link.upstream)?.isShared === true;

  /**
   * What the proofs at hand say, without asking: fresh ones only, or (`anyAge`) any the upstream
   * gave. A stale anonymous proof covers only content that was in the repository when it was
   * given (`digest`, when the question is about one): what was fetched with credentials later is
   * served anonymously only on a fresh proof, whatever makes the upstream look down.
   */
  function hasProof(link: RepositoryRecord, requester: Credentials | undefined, anyAge: boolean, digest?: string): boolean {
    if (isShared(link)) return true;
    const anonymous = deps.index.publicProvenAt(link);
    if (anonymous !== undefined && isFresh(anonymous, link)) return true;
    if (anonymous !== undefined && anyAge && (digest === undefined || (deps.index.linkedAt(link, digest) ?? Infinity) <= anonymous)) return true;
    if (!requester) return false;
    const own = verified.get(key(link, requester));
    return own !== undefined && (anyAge || isFresh(own, link));
  }

  function deny(link: RepositoryRecord, requester: Credentials | undefined, why: string): OciError {
    deps.logger.info({ upstream: link.upstream, repository: link.repository, hasCredentials: requester !== undefined, why }, 'access denied');
    return new OciError('UNAUTHORIZED', `${requester ? 'these credentials are' : 'credentials are'} needed for ${link.upstream}/${link.repository}: ${why}`);
  }

  /**
   * Asks the upstream. `staleWillDo`: what to answer when it cannot be asked — true where a proof
   * it gave before covers the request; anonymous and unknown requesters never get private content.
   * Resolves to whether the upstream itself said yes (false: an outage, and a proof of before did);
   * the caller records the yes, after linking what it confirmed, so the proof is never older than the link.
   */
  async function prove(link: RepositoryRecord, requester: Credentials | undefined, probe: AccessProbe, staleWillDo: boolean, outageIsUnavailable = false): Promise<boolean> {
    const refusal = `${link.upstream}\0${link.repository}\0${requester?.id ?? ''}`;
    // Just refused: a client repeating the request (or a flood of them) is answered here, not relayed upstream.
    if ((refused.get(refusal) ?? 0) > deps.now()) throw deny(link, requester, 'the upstream refused access moments ago');
    try {
      await probe(requester);
    } catch (err) {
      if (isUpstreamOutage(err)) {
        if (staleWillDo) return false;
        // The caller cannot serve it without the upstream anyway (bytes another member holds): "later", not "who are you".
        if (outageIsUnavailable) throw err;
        throw deny(link, requester, `the upstream cannot be asked now (${err.message})`);
      }
      if (err instanceof UpstreamError && (err.kind === 'auth' || err.isNotFound)) {
        if (requester) verified.delete(key(link, requester));
        // A 401/403 to an anonymous request ends the repository's anonymous proof; a 404 may only mean this one digest is not there.
        else if (err.kind === 'auth') deps.index.unmarkPublic(link);
        // A 404 may be about one digest only; a 401/403 is about the repository, for these credentials.
        if (err.kind === 'auth') refused.set(refusal, deps.now() + REFUSAL_MEMORY_MS);
        throw deny(link, requester, 'the upstream does not grant access');
      }
      throw err;
    }
    return true;
  }

  const policy: AccessPolicy = {
    upstreamCredentials(link, requester) {
      if (requester) return requester;
      const configured = options.configured(link.upstream);
      // Configured credentials fetch for anonymous clients only what anonymous clients may read anyway
      // (their rate limit is better); otherwise the first fetch would hand private bytes to anyone.
      return configured && (configured.isShared || isFresh(deps.index.publicProvenAt(link), link)) ? configured.credentials : undefined;
    },

    async authorizeRepository(link, requester, probe, { digest } = {}) {
      if (hasProof(link, requester, false, digest)) return;
      if (await prove(link, requester, probe, hasProof(link, requester, true, digest))) policy.recordSuccess(link, requester);
    },

    authorizeRepositoryLocally(link, requester, { digest } = {}) {
      if (!hasProof(link, requester, true, digest)) throw deny(link, requester, 'the upstream is offline and has not vouched for them');
    },

    async authorizeContent(link, digest, requester, probe, { isLinked, outageIsUnavailable } = {}) {
      if (isShared(link)) return;
      const publicContent = deps.index.publicContentProvenAt(link.upstream, digest);
      if (publicContent !== undefined && isFresh(publicContent, link)) return;
      const linked = isLinked ?? deps.index.isLinked(link, digest);
      if (linked && hasProof(link, requester, false, digest)) return;
      // Asked only off the hot path: whether an old anonymous proof covers it, should the upstream be down.
      const isCovered = publicContent !== undefined && deps.index.publicContentProvenAt(link.upstream, digest, { coveringOnly: true }) !== undefined;
      // Not linked: access to this repository says nothing about a digest cached for another one, so the upstream is asked.
      const isConfirmed = await prove(link, requester, probe, isCovered || (linked && hasProof(link, requester, true, digest)), outageIsUnavailable);
      if (!isConfirmed) return;
      // Only the upstream's own yes links the digest here: a link taken on an outage's word would make it
      // public through this repository's next fresh anonymous proof, long after the outage.
      if (!linked) deps.index.linkRepository(link, digest);
      policy.recordSuccess(link, requester);
    },

    authorizeContentLocally(link, digest, requester) {
      if (isShared(link)) return;
      if (deps.index.publicContentProvenAt(link.upstream, digest, { coveringOnly: true }) !== undefined) return;
      const publicContent = deps.index.publicContentProvenAt(link.upstream, digest);
      if (publicContent !== undefined && isFresh(publicContent, link)) return;
      const linked = deps.index.isLinked(link, digest);
      if (linked && hasProof(link, requester, true, digest)) return;
      throw deny(link, requester, linked ? 'the upstream is offline and has not vouched for them' : 'the content is cached for another repository and the upstream is offline');
    },

    recordSuccess(link, used) {
      if (!used) deps.index.markPublic(link);
      else verified.set(key(link, used), deps.now());
    },

    isReadableWithoutUpstream(link, requester, digest) {
      return hasProof(link, requester, true, digest);
    },

    isVisible(link, requester, isOffline) {
      return hasProof(link, requester, isOffline);
    },
  };
  return policy;
}
