import { link, readFile, stat, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { removeQuietly } from './append-file.js';
import { StoreUnavailableError } from './store.js';

/** The lock file that gives one process the embedded store's data folder. */

const LOCK_FILE = '.lock';
/** Folders of data dirs opened by this process (a lock file naming our own pid is ours only if listed). */
const openedHere = new Set<string>();

/** The folder is no longer open in this process (closed, or opening it failed). */
export function forgetDirLock(storeDir: string): void {
  openedHere.delete(storeDir);
}

async function isAlive(pid: number): Promise<boolean> {
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  // After a reboot or a kill -9 the pid may belong to an unrelated program by now; where /proc tells
  // (Linux), only a Node.js process counts as the holder.
  const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => null);
  return cmdline === null || /node|mailgate|tsx/i.test(cmdline);
}

export async function takeDirLock(storeDir: string): Promise<string> {
  const lockPath = path.join(storeDir, LOCK_FILE);
  for (let attempt = 0; attempt < 100; attempt++) {
    if (await createLockFile(lockPath)) {
      openedHere.add(storeDir);
      return lockPath;
    }
    const holder = await readHolder(lockPath);
    // Our own pid counts as stale unless this process really opened the folder: in a container every
    // restart is pid 1, so the file left by a killed predecessor would otherwise look alive.
    const heldByOther =
      Number.isInteger(holder) &&
      holder > 0 &&
      (holder === process.pid ? openedHere.has(storeDir) : await isAlive(holder));
    if (heldByOther) {
      throw new StoreUnavailableError(
        `The data folder ${path.dirname(storeDir)} is already in use by process ${holder} (lock file ${lockPath}). ` +
          'The embedded store serves one process only: stop the other mailgate, point MAILGATE_DATA_DIR elsewhere, ' +
          'or set REDIS_URL to run several instances. If process ' +
          String(holder) +
          ' is not a mailgate using this folder, delete the lock file.',
      );
    }
    if (await replaceStaleLock(lockPath, holder)) {
      openedHere.add(storeDir);
      return lockPath;
    }
    await new Promise((r) => setTimeout(r, 20 + Math.random() * 30));
  }
  throw new StoreUnavailableError(`Could not take the lock file ${lockPath}; other processes keep taking it over.`);
}

/**
 * Creates the lock file with our pid if there is none; false when it exists. The pid is written to a private
 * file first and hard-linked into place (atomic, fails if the name exists), so a lock file is never seen empty.
 */
async function createLockFile(lockPath: string): Promise<boolean> {
  const mine = `${lockPath}.${process.pid}.${randomBytes(4).toString('hex')}.new`;
  await writeFile(mine, `${process.pid}\n`, { mode: 0o600 });
  try {
    await link(mine, lockPath);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    return false;
  } finally {
    await removeQuietly(mine);
  }
}

async function readHolder(lockPath: string): Promise<number> {
  return Number.parseInt(await readFile(lockPath, 'utf8').catch(() => ''), 10);
}

const TAKEOVER_STALE_MS = 10_000;

/**
 * Replaces a stale lock file. Only the holder of a second, short-lived lock (`.lock.takeover`, O_EXCL) may
 * delete the main lock, and only after reading it again under that lock: a lock file is then deleted only
 * while it still names the dead process, so of several processes starting together after a crash exactly one
 * ends up holding the folder. Returns false when another process is taking over or won; the caller retries.
 */
async function replaceStaleLock(lockPath: string, staleHolder: number): Promise<boolean> {
  const takeoverPath = `${lockPath}.takeover`;
  if (!(await createLockFile(takeoverPath))) {
    // A process that died mid-takeover (a window of a few milliseconds) leaves the file behind.
    const age = await stat(takeoverPath).then(
      (st) => Date.now() - st.mtimeMs,
      () => 0,
    );
    if (age > TAKEOVER_STALE_MS) await removeQuietly(takeoverPath);
    return false;
  }
  try {
    const holder = await readHolder(lockPath);
    const unchanged = holder === staleHolder || (Number.isNaN(holder) && Number.isNaN(staleHolder));
    if (!unchanged) return false;
    await removeQuietly(lockPath);
    return await createLockFile(lockPath);
  } finally {
    await removeQuietly(takeoverPath);
  }
}
