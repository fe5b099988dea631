/**
 * Runs `work` on every item `next()` hands out, at most `concurrency` at a time: that many
 * workers each take the next item as soon as their last one is done. `next()` returning
 * undefined ends a worker, so a caller that empties its queue stops the pool early.
 *
 * Settles once every worker has stopped. The first `work` that throws rejects it, and no
 * worker takes another item after that (the ones already running finish on their own).
 */
export async function forEachConcurrently<T>(next: () => T | undefined, concurrency: number, work: (item: T) => Promise<void>): Promise<void> {
  let failed = false;
  const worker = async (): Promise<void> => {
    for (let item = next(); item !== undefined; item = failed ? undefined : next()) {
      try {
        await work(item);
      } catch (err) {
        failed = true;
        throw err;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, concurrency) }, worker));
}
