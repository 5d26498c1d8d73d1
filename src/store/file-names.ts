import { createHash } from 'node:crypto';
import { checkName } from './names.js';

const MAX_FILE_NAME = 200;

/**
 * A file name for an id: `a-z 0-9 _ -` and inner dots kept, every other byte as `%XX` (so it decodes
 * with decodeURIComponent). Upper-case letters are escaped too, because macOS and Windows file systems
 * ignore case and `msg_aB` and `msg_Ab` must not share a file.
 */
export function encodeFileName(id: string): string {
  let out = '';
  for (const byte of Buffer.from(id, 'utf8')) {
    const c = String.fromCharCode(byte);
    out +=
      /[a-z0-9_-]/.test(c) || (c === '.' && out.length > 0)
        ? c
        : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  // Long ids get a hashed name; the id itself is inside the file, which is what counts when loading.
  return out.length <= MAX_FILE_NAME ? out : `~${createHash('sha256').update(id).digest('hex')}`;
}

/** Log and queue names become file names that are decoded back at open, so they must not be hashed. */
export function checkFileBackedName(kind: string, name: string): void {
  checkName(kind, name);
  if (encodeFileName(name).startsWith('~')) throw new Error(`${kind} "${name.slice(0, 40)}…" is too long`);
}
