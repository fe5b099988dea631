import { z } from 'zod';
import { isValidRegistryHost } from '../oci/reference.js';
import { duration, size, withMs } from './schema-units.js';
import { parseCidr, parseListenAddress } from './units.js';
import { clusterSchema } from './cluster-config.js';

/*
 * The one typed config. Adding a key is one field here: its type, its rule and its default live
 * together, and `Config` follows from the schema. Every object is strict, so a misspelt key
 * stops start-up instead of being ignored.
 */

/**
 * A rule over several keys. zod skips an object's or array's refinements once anything inside
 * it failed, so a second default upstream would be reported only after a typo elsewhere in the
 * same list was fixed; these rules run anyway, so one pass reports every problem. The value is
 * whatever parsed so far: a rule checks the shape of what it reads before trusting it.
 */
function crossCheck<T>(rule: (value: T, report: (path: PropertyKey[], message: string) => void) => void) {
  return z.core._check<T>(
    (payload) => {
      rule(payload.value, (path, message) => payload.issues.push({ code: 'custom', path, message, input: payload.value }));
    },
    { when: (payload) => typeof payload.value === 'object' && payload.value !== null },
  );
}

const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);

const registryHost = z.string().refine(isValidRegistryHost, 'expected a registry host such as docker.io, ghcr.io or localhost:5001 (no scheme, no path)');

/** A catch-all's URL names the registry by `{host}`: `https://{host}`. */
const CATCH_ALL_URL = /^https?:\/\/\{host\}$/;

const upstreamUrl = z
  .url({ protocol: /^https?$/, error: 'expected an http:// or https:// URL' })
  .refine((url) => {
    // zod runs this even after z.url() failed: an unparseable URL is that check's problem, not a crash here.
    if (!URL.canParse(url)) return true;
    const parsed = new URL(url);
    return parsed.pathname === '/' && !parsed.search && !parsed.hash && !parsed.username;
  }, 'expected a bare origin such as https://registry-1.docker.io (no path, query or credentials)')
  .transform((url) => new URL(url).origin);

const tagTtlRule = z
  .strictObject({
    /** A glob over the tag: `*` any run of characters, `?` one character. */
    match: z.string().min(1).optional(),
    /** A regular expression over the tag, for what a glob cannot say (semver-looking tags). */
    regex: z
      .string()
      .min(1)
      .refine((source) => {
        try {
          new RegExp(source);
          return true;
        } catch {
          return false;
        }
      }, 'not a valid regular expression')
      .optional(),
    ttl: duration,
  })
  .check(
    crossCheck<{ match?: unknown; regex?: unknown }>((rule, report) => {
      if ((rule.match === undefined) === (rule.regex === undefined)) report([], 'give exactly one of match or regex');
    }),
  )
  .transform((rule) => withMs(rule, ['ttl']));

const credentialsSchema = z
  .strictObject({
    username: z.string().min(1).optional(),
    /** Prefer passwordFile (or dockerConfig): a password inline ends up wherever the file is copied. */
    password: z.string().optional(),
    passwordFile: z.string().min(1).optional(),
    /** A docker config.json whose `auths` entry for this host holds the credentials. */
    dockerConfig: z.string().min(1).optional(),
    /**
     * Whether anyone who can reach pullthrough may read what these credentials can read. Off: content
     * that needs them is served only to clients whose own credentials the upstream accepts. @default false
     */
    shared: z.boolean().default(false),
  })
  .check(
    crossCheck<Record<string, unknown>>((c, report) => {
      if (c['dockerConfig'] === undefined && c['username'] === undefined) report([], 'give username (with password or passwordFile) or dockerConfig');
      if (c['password'] !== undefined && c['passwordFile'] !== undefined) report([], 'give password or passwordFile, not both');
      if (c['dockerConfig'] !== undefined && c['username'] !== undefined) report([], 'give dockerConfig or username, not both');
    }),
  );

const upstreamSchema = z.strictObject({
  /**
   * The registry host clients name in image references (`docker.io`, `ghcr.io`), or `*`: a
   * catch-all for every registry not listed, reached at its own host.
   */
  host: z.union([z.literal('*'), registryHost]),
  /** Where that registry really answers. For `*`: `https://{host}` (the default) or `http://{host}`. */
  url: z
    .string()
    .superRefine((url, ctx) => {
      if (CATCH_ALL_URL.test(url)) return;
      const parsed = upstreamUrl.safeParse(url);
      if (parsed.success) return;
      // `url: registry-1.docker.io` is the common slip: say what was probably meant.
      const hint = /^[a-z][a-z0-9+.-]*:/i.test(url) ? '' : `: no scheme, did you mean https://${url}?`;
      ctx.addIssue({ code: 'custom', message: `${parsed.error.issues[0]?.message ?? 'invalid URL'}${hint}` });
    })
    .optional(),
  /**
   * Reach this upstream through another mirror that understands containerd's `?ns=` (a regional
   * pullthrough): every request goes to `<via>/v2/…?ns=<host>`, with the client's credentials as
   * they would go to the upstream itself. Listed upstreams only. @default none (direct to url)
   */
  via: upstreamUrl.optional(),
  /** While the `via` mirror is down (no connection, timeout, 429, 5xx), go to `url` directly. @default true */
  viaFallback: z.boolean().default(true),
  /** Bare names and names without a registry host go here. @default false */
  default: z.boolean().default(false),
  /** How long a cached tag is served before it is revalidated with a HEAD; 0 = every pull. @default 5m */
  tagTtl: duration.default(300_000),
  /** Per-tag exceptions to tagTtl, first match wins: `latest` short, release tags long. @default [] */
  tagTtlRules: z.array(tagTtlRule).default([]),
  /**
   * How long an upstream 404 for a tag is remembered, so a storm of pods does not hammer the
   * upstream. Capped at 60s so a newly pushed tag is never hidden for minutes. @default 10s
   */
  notFoundTtl: duration.default(10_000).refine((ms) => ms <= 60_000, 'at most 60s: longer would hide newly pushed tags'),
  /** No upstream contact at all (imagePullPolicy: Never): cached content only. @default false */
  offline: z.boolean().default(false),
  /** Used upstream when a client sends none of its own. */
  credentials: credentialsSchema.optional(),
  /**
   * How long the upstream's answer to "may anonymous (or credential X) read this repository?" is
   * taken without asking again; a stale one is re-proved with a HEAD. @default 5m
   */
  accessTtl: duration.default(300_000),
  /**
   * Origins besides the upstream's own that redirects and token realms may lead to even when they
   * resolve to loopback, link-local or private addresses (a CDN or token service inside the site).
   * Public addresses are always allowed. @default []
   */
  allowOrigins: z
    .array(upstreamUrl)
    .default([]),
  /**
   * The catch-all only: address ranges (CIDR) its registries may resolve to although they are
   * loopback, link-local or private. @default [] (public addresses only)
   */
  allowPrivate: z
    .array(
      z.string().refine((cidr) => parseCidr(cidr) !== undefined, 'expected an address range such as 10.0.0.0/8 or fd00::/8'),
    )
    .default([]),
  /** After `failures` consecutive failures the upstream is not contacted for `openFor`; then one probe. */
  breaker: z
    .strictObject({
      /** @default 5 */
      failures: z.number().int().min(1).default(5),
      /** @default 30s */
      openFor: duration.default(30_000),
    })
    .transform((breaker) => withMs(breaker, ['openFor']))
    .prefault({}),
  timeouts: z
    .strictObject({
      /** TCP + TLS connect. @default 10s */
      connect: duration.default(10_000),
      /** From request sent to response headers. @default 30s */
      headers: duration.default(30_000),
      /** Longest silence inside a response body. @default 30s */
      bodyIdle: duration.default(30_000),
      /** Overall deadline of one manifest, tag-list or token exchange (blob bodies: cache.fillTimeout). @default 60s */
      total: duration.default(60_000),
    })
    .transform((timeouts) => withMs(timeouts, ['connect', 'headers', 'bodyIdle', 'total']))
    .prefault({}),
}).transform((upstream) => withMs(upstream, ['tagTtl', 'notFoundTtl', 'accessTtl']));

export const configSchema = z
  .strictObject({
    /** host:port the registry API listens on. @default 127.0.0.1:5000 */
    listen: z
      .string()
      .default('127.0.0.1:5000')
      .superRefine((value, ctx) => {
        try {
          parseListenAddress(value);
        } catch (err) {
          ctx.addIssue({ code: 'custom', message: (err as Error).message });
        }
      }),
    /**
     * Serve HTTPS with this PEM certificate (chain) and key, for mirrors reached beyond loopback
     * (containerd and docker want HTTPS or an explicit insecure setting there). Absent: plain HTTP.
     */
    tls: z
      .strictObject({
        cert: z.string().min(1, 'path to a PEM certificate (chain)'),
        key: z.string().min(1, 'path to the PEM private key'),
      })
      .optional(),
    /**
     * The URL clients reach this instance at (`https://mirror.example.com:5000`), used in the
     * `WWW-Authenticate` realm. Absent: the request's Host header, when it is a well-formed host.
     */
    publicUrl: upstreamUrl.optional(),
    /** Every upstream offline: nothing leaves the site. @default false */
    offline: z.boolean().default(false),
    /** @default info */
    logLevel: z.enum(['debug', 'info', 'warn', 'error', 'silent']).default('info'),
    /** Bounds on what clients may hold of the server: connections, time, memory (README "Limits"). */
    server: z
      .strictObject({
        /** Open client connections at most; more are refused at accept. @default 1024 */
        maxConnections: z.number().int().min(1).default(1024),
        /** A request's headers must arrive within this (slow-loris bound). @default 30s */
        headersTimeout: duration.default(30_000).refine((ms) => ms > 0, 'must be above 0'),
        /**
         * A request, headers and body, must arrive within this. Clients of a read-only mirror send
         * no bodies; this cuts one trickled byte by byte. Responses (blob downloads) are not bound
         * by it. @default 30s
         */
        requestTimeout: duration.default(30_000).refine((ms) => ms > 0, 'must be above 0'),
        /** A blob response the client stops reading is dropped after this long without progress. @default 60s */
        sendIdleTimeout: duration.default(60_000).refine((ms) => ms > 0, 'must be above 0'),
        /** Memory for the sessions behind tokens from /_pullthrough/token, least recently used evicted first. @default 32MiB */
        tokenMemoryBytes: size.default(32 * 2 ** 20).refine((bytes) => bytes >= 64 * 1024, 'at least 64KiB'),
        /** Tokens each client address may take per second from /_pullthrough/token; 0 = no limit. @default 10 */
        tokenRatePerSecond: z.number().min(0).default(10),
        /** Tokens a client address may take at once before tokenRatePerSecond applies. @default 100 */
        tokenBurst: z.number().int().min(1).default(100),
      })
      .transform((server) => withMs(server, ['headersTimeout', 'requestTimeout', 'sendIdleTimeout']))
      .prefault({}),
    storage: z
      .strictObject({
        /** Data directory: blobs/, tmp/ and index.db. Relative paths are relative to the working directory. @default ./storage */
        root: z.string().min(1).default('./storage'),
        /** Upper bound of the cache on disk; 0 = unbounded. @default 0 */
        maxBytes: size.default(0),
        /** Eviction starts when the cache passes this fraction of maxBytes… @default 0.9 */
        highWatermark: z.number().gt(0).lte(1).default(0.9),
        /** …and stops once it is under this one. @default 0.8 */
        lowWatermark: z.number().gt(0).lte(1).default(0.8),
        /** How often unreferenced blobs and stray files are collected; 0 = only by `pullthrough gc`. @default 1h */
        gcInterval: duration.default(3_600_000),
      })
      .check(
        crossCheck<{ lowWatermark?: unknown; highWatermark?: unknown }>((s, report) => {
          if (typeof s.lowWatermark === 'number' && typeof s.highWatermark === 'number' && s.lowWatermark >= s.highWatermark) {
            report(['lowWatermark'], 'lowWatermark must be below highWatermark');
          }
        }),
      )
      .transform((storage) => withMs(storage, ['gcInterval']))
      .prefault({}),
    cache: z
      .strictObject({
        /** Manifests larger than this are refused (they are held in memory). @default 4MiB */
        maxManifestBytes: size.default(4 * 2 ** 20),
        /** Memory for hot manifests: thousands of them (a node's working set), the rest read from disk. @default 16MiB */
        manifestMemoryBytes: size.default(16 * 2 ** 20),
        /** Upper bound on one blob fill, which goes on after its client has gone. @default 30m */
        fillTimeout: duration.default(1_800_000),
        /**
         * When an image manifest comes from upstream, fetch its blobs ahead of the client, this many
         * at a time (clients fetch layers one to three at a time); 0 = only what clients ask. Off by
         * default: tools that only read manifests (update checkers, `skopeo inspect`) would
         * otherwise pull whole images. @default 0
         */
        prefetchBlobs: z.number().int().min(0).max(16).default(0),
        /**
         * Blob fills (downloads from upstreams into the cache) running at once, prefetches included;
         * a request that would start one more gets 503 UNAVAILABLE with Retry-After. Prefetch uses
         * at most half of them. @default 64
         */
        maxConcurrentFills: z.number().int().min(1).max(4096).default(64),
        /**
         * Memory for manifest bodies being read from upstreams, all reads together: a read that
         * would pass it fails with 503 UNAVAILABLE and Retry-After, so hundreds of concurrent
         * oversized manifests cannot exhaust memory (real manifests are a few KiB: thousands fit).
         * At least maxManifestBytes. @default twice maxManifestBytes (8MiB)
         */
        manifestReadBytes: size.optional(),
      })
      .refine((c) => c.manifestReadBytes === undefined || c.manifestReadBytes >= c.maxManifestBytes, { message: 'manifestReadBytes must be at least maxManifestBytes', path: ['manifestReadBytes'] })
      .transform((c) => withMs({ ...c, manifestReadBytes: c.manifestReadBytes ?? 2 * c.maxManifestBytes }, ['fillTimeout']))
      .prefault({}),
    admin: z
      .strictObject({
        /** File holding the token for the admin API under /_pullthrough/admin/; absent (and no token) = API off. */
        tokenFile: z.string().min(1).optional(),
        /** The token itself, from PULLTHROUGH_ADMIN_TOKEN only: secrets do not belong in the file. */
        token: z.string().min(16, 'use at least 16 characters').optional(),
      })
      .prefault({}),
    metrics: z
      .strictObject({
        /** Serve Prometheus metrics at /metrics. @default true */
        enabled: z.boolean().default(true),
        /** Answer /metrics only with the admin token (`Authorization: Bearer <token>`). @default false */
        requireToken: z.boolean().default(false),
      })
      .prefault({}),
    status: z
      .strictObject({
        /** Answer the status page and /_pullthrough/status only with the admin token. @default false */
        requireToken: z.boolean().default(false),
      })
      .prefault({}),
    /** Peers sharing fills (README "Cluster"); absent: a single node. */
    cluster: clusterSchema.optional(),
    upstreams: z
      .array(upstreamSchema)
      .min(1, 'configure at least one upstream')
      .check(
        crossCheck<unknown[]>((list, report) => {
          if (!Array.isArray(list)) return;
          const seen = new Set<string>();
          let defaults = 0;
          list.forEach((upstream, i) => {
            if (!isRecord(upstream) || typeof upstream['host'] !== 'string') return;
            const { host, url } = upstream;
            const isCatchAll = host === '*';
            const isTemplate = typeof url === 'string' && CATCH_ALL_URL.test(url);
            if (!isCatchAll && (url === undefined || isTemplate)) report([i, 'url'], 'expected the URL where this registry answers, such as https://registry-1.docker.io');
            if (isCatchAll && typeof url === 'string' && !isTemplate) report([i, 'url'], 'a catch-all reaches each registry at its own host: https://{host} or http://{host}');
            if (isCatchAll && upstream['default'] === true) report([i, 'default'], 'the catch-all cannot be the default upstream');
            if (!isCatchAll && Array.isArray(upstream['allowPrivate']) && upstream['allowPrivate'].length > 0) {
              report([i, 'allowPrivate'], 'only the catch-all (host: "*") takes allowPrivate: a listed upstream is reached wherever its url points');
            }
            if (isCatchAll && upstream['via'] !== undefined) report([i, 'via'], 'a catch-all reaches each registry at its own host: give via to listed upstreams only');
            if (isCatchAll && upstream['credentials'] !== undefined) report([i, 'credentials'], 'a catch-all reaches many registries: give credentials to listed upstreams only');
            if (seen.has(host.toLowerCase())) report([i, 'host'], `host ${host.toLowerCase()} is configured twice`);
            seen.add(host.toLowerCase());
            if (upstream['default'] === true && !isCatchAll && ++defaults > 1) report([i, 'default'], 'only one upstream may be the default');
          });
        }),
      )
      // Listed upstreams are addressed by origin from here on.
      .transform((upstreams) => upstreams.map((u) => (u.host === '*' || u.url === undefined ? u : { ...u, url: new URL(u.url).origin }))),
  })
  .check(
    crossCheck<Record<string, unknown>>((config, report) => {
      const admin = isRecord(config['admin']) ? config['admin'] : {};
      const hasToken = admin['token'] !== undefined || admin['tokenFile'] !== undefined;
      for (const key of ['metrics', 'status'] as const) {
        const section = config[key];
        if (isRecord(section) && section['requireToken'] === true && !hasToken) {
          report([key, 'requireToken'], 'needs an admin token (admin.tokenFile or PULLTHROUGH_ADMIN_TOKEN)');
        }
      }
    }),
  );

/** The validated, defaults-filled, frozen configuration. */
export type Config = z.output<typeof configSchema>;
/** One upstream registry's settings. */
export type UpstreamConfig = Config['upstreams'][number];
