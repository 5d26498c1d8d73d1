import { open, readFile, rename, truncate, unlink, type FileHandle } from 'node:fs/promises';

/**
 * A JSON-lines file written in order with group commit: lines appended while a write is in flight go
 * out together in the next write, so many concurrent appends cost few system calls. Every caller's
 * promise settles once its line is in the file (and fsynced when `fsync` is on).
 *
 * A kill -9 in the middle of a write can leave a torn last line; readJsonLines drops it and truncates
 * the file to the last complete line, so the next append never glues onto garbage.
 */
export class AppendFile {
  readonly #path: string;
  readonly #fsync: boolean;
  #handle: FileHandle | null = null;
  #tail: Promise<void> = Promise.resolve();
  #batch: { lines: string[]; done: Promise<void> } | null = null;

  constructor(path: string, fsync: boolean) {
    this.#path = path;
    this.#fsync = fsync;
  }

  append(line: string): Promise<void> {
    if (!this.#batch) {
      const batch: { lines: string[]; done: Promise<void> } = { lines: [], done: Promise.resolve() };
      this.#batch = batch;
      batch.done = this.#tail.then(async () => {
        if (this.#batch === batch) this.#batch = null;
        await this.#write(batch.lines.join(''));
      });
      this.#tail = batch.done.catch(() => undefined);
    }
    this.#batch.lines.push(line);
    return this.#batch.done;
  }

  /** Replaces the whole file atomically (temp + rename) with what `contents()` returns when it runs. */
  rewrite(contents: () => string): Promise<void> {
    this.#batch = null;
    const done = this.#tail.then(async () => {
      await this.#closeHandle();
      const tmp = `${this.#path}.${process.pid}.tmp`;
      const handle = await open(tmp, 'w', 0o600);
      try {
        await handle.writeFile(contents());
        if (this.#fsync) await handle.sync();
      } finally {
        await handle.close();
      }
      await rename(tmp, this.#path);
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
    // Private like the document files: the audit log names users and addresses.
    this.#handle ??= await open(this.#path, 'a', 0o600);
    await this.#handle.appendFile(text);
    if (this.#fsync) await this.#handle.sync();
  }

  async #closeHandle(): Promise<void> {
    const handle = this.#handle;
    this.#handle = null;
    await handle?.close();
  }
}

/** Parses a JSON-lines file; a torn or unparsable tail is cut off (and the file truncated there). */
export async function readJsonLines(path: string): Promise<unknown[]> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  const out: unknown[] = [];
  let goodBytes = 0;
  let start = 0;
  for (;;) {
    const newline = text.indexOf('\n', start);
    if (newline < 0) break;
    const line = text.slice(start, newline);
    try {
      if (line.length > 0) out.push(JSON.parse(line));
    } catch {
      // Only the last write can be torn; anything after it is unreliable, so stop here.
      break;
    }
    goodBytes += Buffer.byteLength(line, 'utf8') + 1;
    start = newline + 1;
  }
  if (goodBytes !== Buffer.byteLength(text, 'utf8')) await truncate(path, goodBytes);
  return out;
}

export async function removeQuietly(path: string): Promise<void> {
  await unlink(path).catch(() => undefined);
}
