import { PassThrough, type Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';

/** Network failures after which a body can be asked for again from where it broke. */
const RESUMABLE_CODES = new Set(['ECONNRESET', 'EPIPE', 'UND_ERR_SOCKET', 'UND_ERR_BODY_TIMEOUT']);

export interface ResumeOptions {
  /** How many times a cut body is asked for again. */
  readonly attempts: number;
  /** Asks for the rest from `offset` on; resolves to its body, or rejects when the upstream cannot resume. */
  reopen(offset: number): Promise<Readable>;
  onResume(code: string, offset: number, attempt: number): void;
  /** Called once: the body was read to its end, failed (with its code), or its consumer left first. */
  onEnd(outcome: { readonly code: string } | 'complete' | 'abandoned'): void;
}

/**
 * One body out of a response and, when the network cuts it, the rest asked for with `Range`
 * (a reset late in a 2 GiB layer need not cost the whole layer). Bytes are passed on as they
 * come, with backpressure; the caller still verifies the whole digest. A consumer that goes
 * away destroys whatever is being read.
 */
export function resumableBody(first: Readable, options: ResumeOptions): Readable {
  const out = new PassThrough({ highWaterMark: 64 * 1024 });
  let current = first;
  let offset = 0;
  let isReported = false;
  const report = (outcome: Parameters<ResumeOptions['onEnd']>[0]) => {
    if (isReported) return;
    isReported = true;
    options.onEnd(outcome);
  };
  out.once('close', () => {
    current.destroy();
    report('abandoned');
  });
  const fail = (err: Error) => {
    report({ code: (err as { code?: string }).code ?? err.name });
    out.destroy(err);
  };

  void (async () => {
    for (let attempt = 1; ; attempt++) {
      try {
        for await (const chunk of current) {
          offset += (chunk as Buffer).length;
          if (!out.write(chunk)) await new Promise((resolve) => out.once('drain', resolve).once('close', resolve));
          if (out.destroyed) return;
        }
        report('complete');
        out.end();
        return;
      } catch (err) {
        const code = (err as { code?: string }).code ?? '';
        if (out.destroyed) return;
        if (!RESUMABLE_CODES.has(code) || attempt > options.attempts) return fail(err as Error);
        options.onResume(code, offset, attempt);
        await sleep(250 * 2 ** (attempt - 1));
        try {
          current = await options.reopen(offset);
        } catch {
          // The upstream cannot resume (no Range, another object now): the first failure is what happened.
          return fail(err as Error);
        }
        if (out.destroyed) return void current.destroy();
      }
    }
  })();
  return out;
}
