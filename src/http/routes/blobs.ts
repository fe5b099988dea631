import type { Request, Response } from 'express';
import type { BlobResult, BlobSender, ByteRange, Registry } from '../../cache/registry.js';
import type { Logger } from '../../logger.js';
import { parseDigest } from '../../oci/digest.js';
import { OciError } from '../../oci/errors.js';
import { parseRange } from '../range.js';
import { labels, repositoryRequest, requesterCredentials } from '../request-context.js';

/** Finds the blob a request asks for: its size and, for GET, its bytes. */
export type BlobReader = (req: Request, res: Response, isHead: boolean) => Promise<BlobResult & { send?: BlobSender }>;

/** `GET`/`HEAD /v2/<name>/blobs/<digest>` through the registry. */
export function registryBlobs(registry: Registry): BlobReader {
  return async (req, res, isHead) => {
    const params = req.params as Record<string, string>;
    const digest = parseDigest(params['1'] ?? '');
    const request = repositoryRequest(req, params['0'] ?? '');
    const readOptions = { credentials: requesterCredentials(res) };
    return isHead ? registry.statBlob(request, digest, readOptions) : registry.getBlob(request, digest, readOptions);
  };
}

/**
 * A blob answer, with single byte ranges (distribution-spec "Pulling blobs"). A body that makes
 * no progress for `sendIdleTimeoutMs` (the client stopped reading) is cut: its file, buffers and
 * read-budget slot go back at once instead of whenever the client returns.
 */
export function createBlobHandler(read: BlobReader, logger: Logger, options: { sendIdleTimeoutMs: number }) {
  return async (req: Request, res: Response): Promise<void> => {
    labels(res).kind = 'blob';
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      throw new OciError('UNSUPPORTED', `${req.method} of blobs is not supported: pullthrough is a read-only mirror`);
    }
    const blob = await read(req, res, req.method === 'HEAD');
    const digest = { value: blob.digest };
    Object.assign(labels(res), { source: blob.source, result: blob.result, upstream: blob.upstream });
    res.setHeader('content-type', 'application/octet-stream');
    res.setHeader('docker-content-digest', blob.digest);
    res.setHeader('etag', `"${blob.digest}"`);
    if (blob.size === undefined) {
      // The upstream sent no length; clients still get the bytes, chunked, but no ranges.
      res.status(200);
      if (!blob.send) return void res.end();
      return send(blob.send, undefined, undefined);
    }
    res.setHeader('accept-ranges', 'bytes');
    const range = parseRange(req.headers.range, blob.size);
    if (range.kind === 'unsatisfiable') {
      throw new OciError('RANGE_INVALID', `range ${req.headers.range} is outside the blob's ${blob.size} bytes`, {
        headers: { 'content-range': `bytes */${blob.size}` },
      });
    }
    let slice: ByteRange | undefined;
    if (range.kind === 'partial') {
      slice = { start: range.start, end: range.end };
      res.status(206);
      res.setHeader('content-range', `bytes ${range.start}-${range.end}/${blob.size}`);
      res.setHeader('content-length', String(range.end - range.start + 1));
    } else {
      res.status(200);
      res.setHeader('content-length', String(blob.size));
    }
    if (!blob.send) return void res.end();
    return send(blob.send, slice, slice ? slice.end - slice.start + 1 : blob.size);

    async function send(sender: BlobSender, range: ByteRange | undefined, length: number | undefined): Promise<void> {
      const context = labels(res);
      const source = blob.source;
      context.expectedBytes = length;
      context.sentBytes = 0;
      // Progress is a chunk handed over, which the sender does only once the socket let go of the
      // one before (a socket idle timeout would also be reset by whatever the client sends). The
      // clock starts at the first chunk: waiting for it (an upstream's first byte, a read-budget
      // slot) is bounded elsewhere, and a client that stops reading stalls only once bytes flow.
      let isIdle = false;
      let idle: NodeJS.Timeout | undefined;
      const dropIdle = () => {
        isIdle = true;
        res.destroy();
      };
      try {
        // Counted as handed over: a client holding every byte may close before our end is
        // processed, and the access log must still see a delivered body.
        await sender(res, {
          range,
          onBytes: (bytes) => {
            if (idle) idle.refresh();
            else (idle = setTimeout(dropIdle, options.sendIdleTimeoutMs)).unref();
            context.sentBytes = (context.sentBytes ?? 0) + bytes;
          },
        });
        res.end();
      } catch (err) {
        if (isIdle) {
          logger.warn({ digest: digest.value, source, sentBytes: context.sentBytes, idleMs: options.sendIdleTimeoutMs }, 'blob response dropped: the client stopped reading');
          return;
        }
        // Nothing went out yet (the file vanished, the fill failed first): an OCI error still can.
        if (!res.headersSent && !res.destroyed) throw err;
        if (length !== undefined && context.sentBytes === length) return;
        // Headers are out: the only honest signal left is a cut connection, never a short 200.
        if (!res.destroyed) res.destroy();
        if ((err as NodeJS.ErrnoException).code !== 'ERR_STREAM_PREMATURE_CLOSE') {
          logger.warn({ digest: digest.value, source, err: (err as Error).message }, 'blob response aborted');
        }
      } finally {
        clearTimeout(idle);
      }
    }
  };
}
