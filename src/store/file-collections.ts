import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { type AppendFile, forEachJsonLine } from './append-file.js';

/**
 * A collection of the embedded store as held in memory, and its journal's format: `docs/<collection>.jsonl`, one
 * line per change, {"id","version","value"} for a put, {"id","version","blob"} for a large value kept in a blob
 * file, {"id","deleted":true} for a delete; the last line of an id wins. Also reads the earlier layout (one file
 * per document) for the migration at open.
 */

/** A journal is rewritten once it has more lines than this and over twice as many as live documents. */
const COMPACT_MIN_LINES = 1000;

export interface StoredDoc {
  version: number;
  /**
   * The value as JSON text: every read parses a fresh copy, so callers never share the cache. Null for a large
   * value once its blob file and journal line are written: it is read from the file then.
   */
  json: string | null;
  /** The blob file of a large value (blob-files.ts). */
  blob?: string;
}

export interface Collection {
  docs: Map<string, StoredDoc>;
  sortedIds: string[] | null;
  journal: AppendFile;
  /** Lines in the journal, queued ones included, since it was last rewritten. */
  lines: number;
}

/** A journal line as read back: a put carries version and value, a delete `deleted: true`. */
interface JournalLine {
  id?: unknown;
  version?: unknown;
  value?: unknown;
  blob?: unknown;
  deleted?: unknown;
}

export function putLine(id: string, version: number, json: string): string {
  return `{"id":${JSON.stringify(id)},"version":${version},"value":${json}}\n`;
}

export function blobLine(id: string, version: number, blob: string): string {
  return `{"id":${JSON.stringify(id)},"version":${version},"blob":${JSON.stringify(blob)}}\n`;
}

export function deleteLine(id: string): string {
  return `{"id":${JSON.stringify(id)},"deleted":true}\n`;
}

/** A version whose blob file may not be written yet is rewritten in full: a rewritten line never waits for a file. */
export function* journalLines(docs: Map<string, StoredDoc>): Generator<string> {
  for (const [id, doc] of docs)
    yield doc.json !== null ? putLine(id, doc.version, doc.json) : blobLine(id, doc.version, doc.blob!);
}

export function needsCompaction(lines: number, live: number): boolean {
  return lines > COMPACT_MIN_LINES && lines > 2 * live;
}

/** Replays a journal into its collection. */
export async function readJournal(collection: Collection, file: string): Promise<void> {
  collection.lines += await forEachJsonLine(file, (parsed) => {
    const line = parsed as JournalLine;
    if (typeof line.id !== 'string')
      throw new Error(`The journal ${file} has a line without an id; it was changed outside mailgate`);
    if (line.deleted === true) collection.docs.delete(line.id);
    else if (typeof line.version === 'number' && typeof line.blob === 'string')
      collection.docs.set(line.id, { version: line.version, json: null, blob: line.blob });
    else if (typeof line.version === 'number' && 'value' in line)
      collection.docs.set(line.id, { version: line.version, json: JSON.stringify(line.value) });
    else
      throw new Error(
        `The journal ${file} has a line for ${JSON.stringify(line.id).slice(0, 60)} that is neither a document nor a deletion`,
      );
  });
}

/** Loads a collection folder of the earlier layout: one `<encoded id>.json` file per document. */
export async function readOldLayout(collection: Collection, dir: string): Promise<void> {
  const files = await readdir(dir);
  const chunk = 64;
  for (let i = 0; i < files.length; i += chunk) {
    const loaded = await Promise.all(
      files.slice(i, i + chunk).map(async (file) => {
        // Temp files (dot-prefixed, `.tmp`) were never renamed into place, so they are not documents.
        if (file.startsWith('.') || !file.endsWith('.json')) return null;
        const full = path.join(dir, file);
        const text = await readFile(full, 'utf8');
        let parsed: { id?: unknown; version?: unknown; value?: unknown };
        try {
          parsed = JSON.parse(text) as typeof parsed;
        } catch (cause) {
          throw new Error(
            `The document file ${full} is not valid JSON (${text.length} bytes); it was changed outside mailgate or the disk lost data`,
            { cause },
          );
        }
        if (typeof parsed.id !== 'string' || typeof parsed.version !== 'number' || !('value' in parsed)) {
          throw new Error(`The document file ${full} is not a mailgate document`);
        }
        return { id: parsed.id, version: parsed.version, json: JSON.stringify(parsed.value) };
      }),
    );
    for (const doc of loaded) if (doc) collection.docs.set(doc.id, { version: doc.version, json: doc.json });
  }
}
