import { timingSafeEqual } from 'node:crypto';
import { Router, type NextFunction, type Request, type Response } from 'express';
import type { CacheAdmin } from '../../cache/cache-admin.js';
import { OciError } from '../../oci/errors.js';
import { parseImageReference } from '../../oci/image-reference.js';
import { labels } from '../request-context.js';

function sameToken(given: string, expected: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

function imageQuery(req: Request) {
  const image = req.query['image'];
  if (typeof image !== 'string' || image === '') throw new OciError('NAME_INVALID', 'name the image: ?image=nginx:1.27');
  return parseImageReference(image);
}

/** Lets through only requests with `Authorization: Bearer <admin token>`; 401 otherwise. */
export function requireAdminToken(token: string, what: string) {
  return (req: Request, _res: Response, next: NextFunction): void => {
    const given = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '')?.[1];
    if (!given || !sameToken(given, token)) throw new OciError('UNAUTHORIZED', `${what} needs the admin token`);
    next();
  };
}

/**
 * `/_pullthrough/admin/…`, the same operations as the CLI, behind `Authorization: Bearer <admin
 * token>`: GET images, GET stats, PUT/DELETE pins?image=, DELETE images?image=, POST gc,
 * POST verify[?repair=true].
 */
export function createAdminRouter(admin: CacheAdmin, token: string, gcGraceMs: number): Router {
  const router = Router();
  router.use((_req: Request, res: Response, next: NextFunction) => {
    labels(res).kind = 'admin';
    next();
  });
  router.use(requireAdminToken(token, 'the admin API'));
  router.get('/images', (_req, res) => void res.json({ images: admin.list() }));
  router.get('/stats', (_req, res) => void res.json(admin.stats()));
  router.put('/pins', (req, res) => {
    admin.pin(imageQuery(req));
    res.status(204).end();
  });
  router.delete('/pins', (req, res) => {
    if (!admin.unpin(imageQuery(req))) throw new OciError('NAME_UNKNOWN', 'that image is not pinned');
    res.status(204).end();
  });
  router.delete('/images', async (req, res) => {
    const result = await admin.remove(imageQuery(req));
    if (!result.isFound) throw new OciError('MANIFEST_UNKNOWN', 'that image is not in the cache');
    res.json({ objects: result.objects, bytes: result.bytes });
  });
  router.post('/gc', async (_req, res) => void res.json(await admin.gc(gcGraceMs)));
  router.post('/verify', async (req, res) => void res.json(await admin.verify({ repair: req.query['repair'] === 'true' })));
  return router;
}
