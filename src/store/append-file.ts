import { open, readdir, rename, truncate, unlink, type FileHandle } from 'node:fs/promises';
import path from 'node:path';

/** A rewrite is written to its temp file in pieces of about this size, so no giant string is ever built. */
const REWRITE_CHUNK = 1 << 20;

/** The file calls an AppendFile makes: node:fs/promises, or a wrapper (tests record the order of writes and syncs). */
export interface AppendFileSystem {
  open(
    filePath: string,
    flags: string,
    mode?: number,
  ): Promise<Pick<FileHandle, 'appendFile' | 'writeFile' | 'sync' | 'close'>>;
  rename(from: string, to: string): Promise<void>;
}

const nodeFileSystem: AppendFileSystem = { open, rename };

interface Batch {
  lines: string[];
  /** Writes this batch must wait for (another file's lines that have to reach the disk first). */
  after: Promise<unknown>[];
  done: Promise<void>;
}

/**
 * A JSON-lines file written in order with group commit: lines appended while a write is in flight go
 * out together in the next write, so many concurrent appends cost few system calls. Every caller's
 * promise settles once its line is in the file (and fsynced when `fsync` is on).
 *
 * A kill -9 in the middle of a write can leave a torn last line; readJsonLines drops it and truncates
 * the file to the last complete line, so the next append never glues onto garbage.
 *
 * A failed append (disk full, I/O error) may have left part of its text in the file, so every later append
 * fails with the same error instead of writing after it: the file is only appended to again once it has
 * been read (and its torn tail cut off) by a new process.
 */
export class AppendFile {
  readonly path: string;
  readonly #fsync: boolean;
  readonly #syncAppends: boolean;
  readonly #fs: AppendFileSystem;
  #handle: Awaited<ReturnType<AppendFileSystem['open']>> | null = null;
  #tail: Promise<void> = Promise.resolve();
  #batch: Batch | null = null;
  #failure: Error | null = null;

  /**
   * With `fsync`, every batch of appended lines is synced before its callers hear of it, a rewrite's temp file
   * before its rename and the folder after it. `syncAppends: false` keeps the rewrites' syncs but not the appends':
   * for a file whose content its users rebuild after a power loss, where an fsync per batch buys nothing.
   */
  constructor(
    filePath: string,
    fsync: boolean,
    fs: AppendFileSystem = nodeFileSystem,
    options: { syncAppends?: boolean } = {},
  ) {
    this.path = filePath;
    this.#fsync = fsync;
    this.#syncAppends = fsync && options.syncAppends !== false;
    this.#fs = fs;
  }

  /**
   * Queues `line` (which ends in a newline). With `after`, the batch holding the line is written only once
   * `after` has settled successfully: a line that describes another file's change never reaches the disk
   * before that change does. Batches stay in order, so one waiting batch holds back the later ones.
   */
  append(line: string, after?: Promise<unknown>): Promise<void> {
    if (!this.#batch) {
      const batch: Batch = { lines: [], after: [], done: Promise.resolve() };
      this.#batch = batch;
      batch.done = this.#tail.then(async () => {
        if (this.#batch === batch) this.#batch = null;
        if (batch.after.length > 0) await Promise.all(batch.after);
        await this.#write(batch.lines.join(''));
      });
      this.#tail = batch.done.catch(() => undefined);
    }
    this.#batch.lines.push(line);
    if (after) this.#batch.after.push(after);
    return this.#batch.done;
  }

  /**
   * Replaces the whole file atomically (temp + rename) with the text `contents()` yields when the rewrite
   * runs, after every line queued before this call. Lines queued after this call are appended after the new
   * contents, even when `contents()` already covers them, so readers must treat a repeated line as harmless.
   * A failed rewrite leaves the file as it was.
   */
  rewrite(contents: () => Iterable<string>): Promise<void> {
    this.#batch = null;
    const done = this.#tail.then(async () => {
      if (this.#failure) throw this.#failure;
      await this.#closeHandle();
      const tmp = `${this.path}.${process.pid}.tmp`;
      try {
        const handle = await this.#fs.open(tmp, 'w', 0o600);
        try {
          let chunk = '';
          for (const piece of contents()) {
            chunk += piece;
            if (chunk.length >= REWRITE_CHUNK) {
              await handle.writeFile(chunk);
              chunk = '';
            }
          }
          if (chunk.length > 0) await handle.writeFile(chunk);
          if (this.#fsync) await handle.sync();
        } finally {
          await handle.close();
        }
        // The temp file's contents are synced above, before the rename makes them the file; the folder after it.
        await this.#fs.rename(tmp, this.path);
      } catch (err) {
        await removeQuietly(tmp);
        throw err;
      }
      if (this.#fsync) await syncFolder(path.dirname(this.path), this.#fs);
    });
    this.#tail = done.catch(() => undefined);
    return done;
  }

  /** Waits for every pending write, then closes the file. */
  async close(): Promise<void> {
    await this.#tail;
    await this.#closeHandle();
  }

  async #write(text: string): Promise<void> {
    if (this.#failure) throw this.#failure;
    try {
      if (!this.#handle) {
        // Private like the document files: the audit log names users and addresses.
        this.#handle = await this.#fs.open(this.path, 'a', 0o600);
        // The file may be new: its name is durable only once the folder is synced.
        if (this.#fsync) await syncFolder(path.dirname(this.path), this.#fs);
      }
      await this.#handle.appendFile(text);
      if (this.#syncAppends) await this.#handle.sync();
    } catch (err) {
      this.#failure = err as Error;
      throw err;
    }
  }

  async #closeHandle(): Promise<void> {
    const handle = this.#handle;
    this.#handle = null;
    await handle?.close();
  }
}

export async function syncFolder(folder: string, fs: AppendFileSystem = nodeFileSystem): Promise<void> {
  const handle = await fs.open(folder, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** A JSON-lines file is read in pieces of this size, so a file larger than the longest string can be read. */
const READ_CHUNK = 1 << 20;

/**
 * Calls `onLine` with every line of a JSON-lines file, in order, reading it in pieces; returns the number of
 * lines. A torn or unparsable tail is cut off (and the file truncated there). A missing file has no lines.
 */
export async function forEachJsonLine(filePath: string, onLine: (value: unknown) => void): Promise<number> {
  let handle: FileHandle;
  try {
    handle = await open(filePath, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 0;
    throw err;
  }
  let count = 0;
  let goodBytes = 0;
  let size: number;
  try {
    size = (await handle.stat()).size;
    const buffer = Buffer.allocUnsafe(READ_CHUNK);
    let rest = Buffer.alloc(0);
    let position = 0;
    let torn = false;
    while (!torn && position < size) {
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, position);
      if (bytesRead === 0) break;
      position += bytesRead;
      const data =
        rest.length > 0 ? Buffer.concat([rest, buffer.subarray(0, bytesRead)]) : buffer.subarray(0, bytesRead);
      let start = 0;
      for (;;) {
        // A newline byte never occurs inside a multi-byte UTF-8 character, so lines split cleanly on it.
        const newline = data.indexOf(10, start);
        if (newline < 0) break;
        let value: unknown;
        let empty = false;
        try {
          if (newline === start) empty = true;
          else value = JSON.parse(data.toString('utf8', start, newline));
        } catch {
          // Only the last write can be torn; anything after it is unreliable, so stop here.
          torn = true;
          break;
        }
        if (!empty) {
          onLine(value);
          count++;
        }
        goodBytes += newline + 1 - start;
        start = newline + 1;
      }
      // Copied: `buffer` is reused by the next read.
      rest = Buffer.from(data.subarray(start));
    }
  } finally {
    await handle.close();
  }
  if (goodBytes !== size) await truncate(filePath, goodBytes);
  return count;
}

/** Parses a JSON-lines file into an array; a torn or unparsable tail is cut off (see forEachJsonLine). */
export async function readJsonLines(filePath: string): Promise<unknown[]> {
  const out: unknown[] = [];
  await forEachJsonLine(filePath, (value) => out.push(value));
  return out;
}

/**
 * The JSON-lines files of a folder by their decoded names (`<encoded name>.jsonl`); temp files left by a
 * rewrite that was cut off are removed on the way.
 */
export async function jsonlFilesIn(dir: string): Promise<{ name: string; file: string }[]> {
  const out: { name: string; file: string }[] = [];
  for (const entry of await readdir(dir)) {
    if (entry.endsWith('.jsonl'))
      out.push({ name: decodeURIComponent(entry.slice(0, -'.jsonl'.length)), file: path.join(dir, entry) });
    else if (entry.endsWith('.tmp')) await removeQuietly(path.join(dir, entry));
  }
  return out;
}

export async function removeQuietly(filePath: string): Promise<void> {
  await unlink(filePath).catch(() => undefined);
}
