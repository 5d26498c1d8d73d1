import { mkdtemp, open, readdir, readFile, rename, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { toolForTests } from '../../test/fakes/tools.js';
import { AppendFile, forEachJsonLine, readJsonLines, type AppendFileSystem } from './append-file.js';

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

  it('rewrites in pieces from an iterable, and lines queued around a pending rewrite keep their order', async () => {
    const file = path.join(dir, 'rewrite.jsonl');
    const appender = new AppendFile(file, false);
    const state = new Map<number, string>();
    const put = (i: number, v: string) => {
      state.set(i, v);
      return appender.append(`${JSON.stringify({ i, v })}\n`);
    };
    // 3000 lines of ~1 KB: several 1 MB pieces.
    const big = 'x'.repeat(1000);
    await Promise.all(Array.from({ length: 3000 }, (_, i) => put(i, big)));
    const pending = [put(0, 'before')];
    const rewritten = appender.rewrite(function* () {
      for (const [i, v] of state) yield `${JSON.stringify({ i, v })}\n`;
    });
    // Queued after the rewrite was scheduled but before it ran: in the new contents and appended after them.
    pending.push(put(1, 'after'), put(0, 'last'));
    await Promise.all([...pending, rewritten]);
    await appender.close();
    const lines = (await readJsonLines(file)) as { i: number; v: string }[];
    expect(lines.length).toBe(3000 + 2);
    const replayed = new Map<number, string>();
    for (const { i, v } of lines) replayed.set(i, v);
    expect(replayed).toEqual(state);
    expect(lines.slice(-2)).toEqual([
      { i: 1, v: 'after' },
      { i: 0, v: 'last' },
    ]);
    expect((await readdir(dir)).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });

  it('writes a line given `after` only once that promise is fulfilled, and not at all when it is rejected', async () => {
    const file = path.join(dir, 'after.jsonl');
    const appender = new AppendFile(file, false);
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const waiting = appender.append('{"n":1}\n', gate);
    await new Promise((r) => setTimeout(r, 30));
    expect(await readJsonLines(file)).toEqual([]);
    release();
    await waiting;
    expect(await readJsonLines(file)).toEqual([{ n: 1 }]);
    await expect(appender.append('{"n":2}\n', Promise.reject(new Error('the other write failed')))).rejects.toThrow(
      'the other write failed',
    );
    await appender.append('{"n":3}\n');
    await appender.close();
    expect(await readJsonLines(file)).toEqual([{ n: 1 }, { n: 3 }]);
  });

  it.skipIf(!toolForTests('devFull'))(
    'after a failed write (disk full) every later append fails instead of writing after it',
    async () => {
      const file = path.join(dir, 'full.jsonl');
      await symlink(toolForTests('devFull')!, file);
      const appender = new AppendFile(file, false);
      const first = await appender.append('{"n":1}\n').catch((err: unknown) => err);
      expect(first).toMatchObject({ code: 'ENOSPC' });
      // The same error, without trying the disk again.
      await expect(appender.append('{"n":2}\n')).rejects.toBe(first);
      await appender.close();
    },
  );

  it('reads a file of several pieces, multi-byte characters across their edges, and cuts a torn tail at the right byte', async () => {
    const file = path.join(dir, 'big.jsonl');
    // 3-byte and 4-byte characters with odd line lengths: some land across the 1 MB read boundaries.
    const lines = Array.from({ length: 6000 }, (_, i) => ({ i, text: '€😀'.repeat(40 + (i % 97)) }));
    const whole = lines.map((l) => `${JSON.stringify(l)}\n`).join('');
    expect(Buffer.byteLength(whole)).toBeGreaterThan(3 * (1 << 20));
    await writeFile(file, `${whole}${JSON.stringify({ i: -1, text: '€😀' }).slice(0, 11)}`);
    expect(await readJsonLines(file)).toEqual(lines);
    expect(await readFile(file, 'utf8')).toBe(whole);
    // An error thrown by the reader of a line is not taken for a torn line: it stops the read and nothing is cut.
    await expect(
      forEachJsonLine(file, () => {
        throw new Error('not a document');
      }),
    ).rejects.toThrow('not a document');
    expect(await readFile(file, 'utf8')).toBe(whole);
  });

  it('reads a missing file as empty', async () => {
    expect(await readJsonLines(path.join(dir, 'nope.jsonl'))).toEqual([]);
  });
});

/** The real file system, recording each write, sync and rename by file name (the folder's own sync as `dir`). */
function recordingFs(dir: string, events: string[]): AppendFileSystem {
  const name = (p: string) => (p === dir ? 'dir' : path.basename(p).replace(/\.\d+\.tmp$/, '.tmp'));
  return {
    async open(filePath, flags, mode) {
      const handle = await open(filePath, flags, mode);
      const n = name(filePath);
      return {
        appendFile: async (data: string | Uint8Array) => {
          await handle.appendFile(data);
          events.push(`write ${n} ${String(data)}`);
        },
        writeFile: async (data: string | Uint8Array) => {
          await handle.writeFile(data);
          events.push(`write ${n} ${String(data)}`);
        },
        sync: async () => {
          await handle.sync();
          events.push(`fsync ${n}`);
        },
        close: () => handle.close(),
      };
    },
    async rename(from, to) {
      await rename(from, to);
      events.push(`rename ${name(from)} ${name(to)}`);
    },
  };
}

describe('JSON-lines files on disk, in order', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'mailgate-jsonl-order-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('with fsync, answers appends only after their batch is written and fsynced: one fsync per batch', async () => {
    const events: string[] = [];
    const file = new AppendFile(path.join(dir, 'j.jsonl'), true, recordingFs(dir, events));
    await Promise.all([
      file.append('{"a":1}\n').then(() => events.push('answered a')),
      file.append('{"b":2}\n').then(() => events.push('answered b')),
    ]);
    await file.append('{"c":3}\n').then(() => events.push('answered c'));
    await file.close();
    expect(events).toEqual([
      // A new file's name is durable once its folder is synced.
      'fsync dir',
      'write j.jsonl {"a":1}\n{"b":2}\n',
      'fsync j.jsonl',
      'answered a',
      'answered b',
      'write j.jsonl {"c":3}\n',
      'fsync j.jsonl',
      'answered c',
    ]);
  });

  it('with fsync, a rewrite syncs its temp file before the rename and the folder after it', async () => {
    const events: string[] = [];
    const file = new AppendFile(path.join(dir, 'j.jsonl'), true, recordingFs(dir, events));
    await file.append('{"old":1}\n');
    events.length = 0;
    await file.rewrite(() => ['{"new":1}\n']).then(() => events.push('answered'));
    await file.close();
    expect(events).toEqual([
      'write j.jsonl.tmp {"new":1}\n',
      'fsync j.jsonl.tmp',
      'rename j.jsonl.tmp j.jsonl',
      'fsync dir',
      'answered',
    ]);
    expect(await readJsonLines(path.join(dir, 'j.jsonl'))).toEqual([{ new: 1 }]);
  });

  it('without fsync, never syncs', async () => {
    const events: string[] = [];
    const file = new AppendFile(path.join(dir, 'j.jsonl'), false, recordingFs(dir, events));
    await file.append('{"a":1}\n');
    await file.rewrite(() => ['{"b":1}\n']);
    await file.close();
    expect(events.filter((e) => e.startsWith('fsync'))).toEqual([]);
  });
});
