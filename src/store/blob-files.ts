import { createHash } from 'node:crypto';
import { mkdir, open, readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { removeQuietly, syncFolder } from './append-file.js';

/**
 * Large document values of the embedded store (message bodies), each in a file of its own under `blobs/`, read
 * from disk when asked for. The journal line of such a version names its file instead of holding the value, and
 * memory keeps only that name: the process's memory does not grow with the bytes waiting in the mail queue.
 *
 * A blob file is complete before the journal line naming it is written (the line waits for it), so a line read
 * back always names a whole file; a file no current line names (superseded, deleted, or written just before a
 * crash) is deleted at open.
 */

/** Values at least this long (JSON characters) go to a blob file. */
export const BLOB_MIN_CHARS = 16 * 1024;

/** Characters encoded and written per piece of a blob file. */
const WRITE_CHARS = 1024 * 1024;

export class BlobFiles {
  readonly #dir: string;
  readonly #fsync: boolean;

  constructor(dir: string, fsync: boolean) {
    this.#dir = dir;
    this.#fsync = fsync;
  }

  /** The file name of one version of a document. */
  static nameOf(collection: string, id: string, version: number): string {
    return `${createHash('sha256').update(`${collection}\0${id}`).digest('hex').slice(0, 40)}.${version}.json`;
  }

  async write(name: string, json: string): Promise<void> {
    await mkdir(this.#dir, { recursive: true, mode: 0o700 });
    const handle = await open(path.join(this.#dir, name), 'w', 0o600);
    try {
      // A piece at a time: a 25 MB value is never encoded into one 25 MB buffer in one step that holds up the
      // event loop. A piece never ends between the two halves of a surrogate pair, which would encode as U+FFFD.
      for (let at = 0; at < json.length;) {
        let end = Math.min(at + WRITE_CHARS, json.length);
        const last = json.charCodeAt(end - 1);
        if (end < json.length && last >= 0xd800 && last <= 0xdbff) end--;
        const piece = Buffer.from(json.slice(at, end), 'utf8');
        for (let done = 0; done < piece.length;)
          done += (await handle.write(piece, done, piece.length - done)).bytesWritten;
        at = end;
      }
      if (this.#fsync) await handle.sync();
    } finally {
      await handle.close();
    }
    if (this.#fsync) await syncFolder(this.#dir);
  }

  read(name: string): Promise<string> {
    return readFile(path.join(this.#dir, name), 'utf8');
  }

  remove(name: string): Promise<void> {
    return removeQuietly(path.join(this.#dir, name));
  }

  /** Deletes every blob file not in `live`. */
  async sweep(live: ReadonlySet<string>): Promise<void> {
    const names = await readdir(this.#dir).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return [] as string[];
      throw err;
    });
    for (const name of names) if (!live.has(name)) await this.remove(name);
  }
}
