import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AppendFile, readJsonLines } from './append-file.js';

describe('JSON-lines files', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'mailgate-jsonl-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('drops a torn last line and truncates the file so the next append is clean', async () => {
    const file = path.join(dir, 'log.jsonl');
    await writeFile(file, '{"a":1}\n{"a":2}\n{"a":3, "tor');
    expect(await readJsonLines(file)).toEqual([{ a: 1 }, { a: 2 }]);
    expect(await readFile(file, 'utf8')).toBe('{"a":1}\n{"a":2}\n');
    const appender = new AppendFile(file, false);
    await appender.append('{"a":4}\n');
    await appender.close();
    expect(await readJsonLines(file)).toEqual([{ a: 1 }, { a: 2 }, { a: 4 }]);
  });

  it('keeps the order of concurrent appends and groups them', async () => {
    const file = path.join(dir, 'order.jsonl');
    const appender = new AppendFile(file, false);
    await Promise.all(Array.from({ length: 500 }, (_, i) => appender.append(`${JSON.stringify({ i })}\n`)));
    expect(await readJsonLines(file)).toEqual(Array.from({ length: 500 }, (_, i) => ({ i })));
    await appender.rewrite(() => '{"compacted":true}\n');
    await appender.append('{"after":1}\n');
    await appender.close();
    expect(await readJsonLines(file)).toEqual([{ compacted: true }, { after: 1 }]);
  });

  it('reads a missing file as empty', async () => {
    expect(await readJsonLines(path.join(dir, 'nope.jsonl'))).toEqual([]);
  });
});
