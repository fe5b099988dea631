import { open, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';

/** Who serves a storage root, as its lock file says. */
export interface StorageOwner {
  readonly pid: number;
  /** When that process started (ms since the epoch): a pid reused after a restart (pid 1 in a container) is not the owner. */
  readonly processStartedAt: number;
  /** Where it answers, once it listens (`http://127.0.0.1:5000`). */
  readonly url: string | undefined;
}

/** This instance's claim on a storage root. */
export interface StorageLock {
  /** False when a live server already owns the root: then this instance must not purge tmp/ or collect garbage. */
  readonly isOwner: boolean;
  /** The owner: this instance, or the live server that holds the lock. */
  readonly owner: StorageOwner;
  /** Records where the owner answers (no-op for a non-owner). */
  setUrl(url: string): Promise<void>;
  /** Removes the lock file if this instance holds it. */
  release(): Promise<void>;
}

export const LOCK_FILE = 'server.lock';
/** Start times are derived from uptime and drift by a few ms; a restart is seconds apart. */
const SAME_PROCESS_TOLERANCE_MS = 1_000;

/** This process, as a lock records it. */
function self(): { pid: number; processStartedAt: number } {
  return { pid: process.pid, processStartedAt: Math.round(Date.now() - process.uptime() * 1000) };
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: alive, owned by another user.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * The live server that owns `root`, or undefined. A lock left by a process that is gone (or by an
 * earlier process that had this one's pid) is stale and names nobody.
 */
export async function readStorageOwner(root: string): Promise<StorageOwner | undefined> {
  let owner: StorageOwner;
  try {
    owner = JSON.parse(await readFile(path.join(root, LOCK_FILE), 'utf8')) as StorageOwner;
  } catch {
    return undefined;
  }
  if (!Number.isSafeInteger(owner.pid) || owner.pid <= 0) return undefined;
  const me = self();
  if (owner.pid === me.pid) return Math.abs(owner.processStartedAt - me.processStartedAt) <= SAME_PROCESS_TOLERANCE_MS ? owner : undefined;
  return isAlive(owner.pid) ? owner : undefined;
}

/**
 * Takes `root/server.lock` for a server unless a live one holds it. The lock is a file naming the
 * owner's pid (created exclusively, so two starting servers cannot both win); commands on the
 * same root (preload's and export's in-process server, `gc`) read it to leave the owner's temp
 * files and garbage collection alone, and to find where it answers.
 */
export async function acquireStorageLock(root: string): Promise<StorageLock> {
  const lockPath = path.join(root, LOCK_FILE);
  const me = { ...self(), url: undefined as string | undefined };
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const handle = await open(lockPath, 'wx', 0o644);
      await handle.writeFile(JSON.stringify(me));
      await handle.close();
      let url: string | undefined;
      let held = true;
      return {
        isOwner: true,
        get owner() {
          return { ...me, url };
        },
        async setUrl(value) {
          url = value;
          if (held) await writeFile(lockPath, JSON.stringify({ ...me, url }));
        },
        async release() {
          if (!held) return;
          held = false;
          await rm(lockPath, { force: true });
        },
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const owner = await readStorageOwner(root);
    if (owner) return { isOwner: false, owner, setUrl: async () => undefined, release: async () => undefined };
    // Stale: its process is gone. Whoever removes it first takes it on the next attempt.
    await rm(lockPath, { force: true });
  }
  throw new Error(`cannot take ${lockPath}: another process keeps replacing it`);
}
