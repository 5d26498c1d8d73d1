import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createFileStore, encodeFileName } from '../../src/store/file-store.js';
import { StoreUnavailableError } from '../../src/store/store.js';
import { toolForTests } from '../fakes/tools.js';

const WRITER = path.resolve(import.meta.dirname, '../fakes/file-store-writer.ts');

function startWriter(dir: string, mode: 'write' | 'compact' | 'open' | 'hold') {
  // stdin is for `hold`: closing it lets the writer go.
  const child = spawn(process.execPath, ['--import', 'tsx', WRITER, dir, mode], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal })),
  );
  const ready = async (): Promise<void> => {
    while (!stdout.includes('ready')) {
      if (child.exitCode !== null) throw new Error(`writer exited early: ${stderr}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  };
  return { child, exited, ready, output: () => ({ stdout, stderr }) };
}

/** What a killed writer saw acknowledged: the highest version per document, log ids, scheduled ids. */
function acknowledged(stdout: string) {
  const acked = { docs: new Map<string, number>(), logIds: new Set<string>(), scheduled: new Set<string>() };
  for (const line of stdout.split('\n')) {
    const [kind, a, b] = line.split(' ');
    if (kind === 'D') acked.docs.set(a!, Math.max(acked.docs.get(a!) ?? 0, Number(b)));
    else if (kind === 'L') acked.logIds.add(a!);
    else if (kind === 'S') acked.scheduled.add(a!);
  }
  return acked;
}

/**
 * A journal as a killed writer left it, before any recovery: every complete line parses and its value agrees
 * with its version; only the last line may be torn. Returns the number of complete lines.
 */
async function checkRawJournal(file: string): Promise<{ lines: number; tornTail: boolean }> {
  const text = await readFile(file, 'utf8');
  const lines = text.split('\n');
  const tail = lines.pop()!;
  for (const line of lines) {
    const parsed = JSON.parse(line) as { id: string; version: number; value: { atVersion: number } };
    expect(parsed.value.atVersion).toBe(parsed.version);
  }
  return { lines: lines.length, tornTail: tail.length > 0 };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('file store crash safety', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'mailgate-crash-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('survives repeated kill -9 mid-write: every acknowledged write is there, versions agree, only the tail can be torn', async () => {
    let tornTails = 0;
    let maxVersion = 0;
    let ackedTotal = 0;
    const docsDir = path.join(dir, 'store', 'docs');
    for (let round = 0; round < 6; round++) {
      const writer = startWriter(dir, 'write');
      await writer.ready();
      await sleep(150 + Math.random() * 350);
      writer.child.kill('SIGKILL');
      expect((await writer.exited).signal).toBe('SIGKILL');
      const acked = acknowledged(writer.output().stdout);
      expect(acked.docs.size).toBeGreaterThan(0);

      // Right after the kill, before any recovery: complete lines only, except perhaps the last one.
      const raw = await checkRawJournal(path.join(docsDir, 'crash.jsonl'));
      expect(raw.lines).toBeGreaterThan(0);
      if (raw.tornTail) tornTails++;

      // The stale lock of the killed writer does not block reopening; recovery cuts a torn tail and drops temp files.
      const store = await createFileStore(dir);
      try {
        const docs = await store.list<{ atVersion: number; payload: string }>('crash');
        expect(docs.length).toBeGreaterThan(0);
        for (const doc of docs) {
          expect(doc.id).toMatch(/^doc-\d-\d+$/);
          expect(doc.value.atVersion).toBe(doc.version);
          maxVersion = Math.max(maxVersion, doc.version);
        }
        expect((await readdir(docsDir)).filter((f) => !f.endsWith('.jsonl'))).toEqual([]);
        expect((await readFile(path.join(docsDir, 'crash.jsonl'), 'utf8')).endsWith('\n')).toBe(true);
        const log = await store.readLog<{ lane: number; i: number }>('crash-log', { limit: 1_000_000 });
        expect(log.length).toBeGreaterThan(0);
        expect(log.map((e) => e.id)).toEqual(
          log
            .map((e) => e.id)
            .sort()
            .reverse(),
        );
        // Nothing acknowledged was lost: documents at least at the acknowledged version, log entries, schedules.
        for (const [id, version] of acked.docs)
          expect((await store.get('crash', id))?.version ?? 0).toBeGreaterThanOrEqual(version);
        const logIds = new Set(log.map((e) => e.id));
        for (const id of acked.logIds) expect(logIds.has(id)).toBe(true);
        const stats = await store.scheduleStats('crash-q');
        expect(stats.count).toBeGreaterThanOrEqual(acked.scheduled.size);
        const claimed = new Set(await store.claimDue('crash-q', Date.now() + 1e12, 1, 1_000_000));
        for (const id of acked.scheduled) expect(claimed.has(id)).toBe(true);
        ackedTotal += acked.docs.size + acked.logIds.size + acked.scheduled.size;
        // Writes after recovery append cleanly (no line glued onto a torn one).
        const id = await store.append('crash-log', { after: round });
        expect((await store.readLog('crash-log', { limit: 1 }))[0]?.id).toBe(id);
        const next = (docs[0]!.version ?? 0) + 1;
        await store.put('crash', docs[0]!.id, { atVersion: next, payload: 'after recovery' }, { ifVersion: next - 1 });
      } finally {
        await store.close();
      }
      const reread = await createFileStore(dir);
      try {
        expect((await reread.list('crash')).length).toBeGreaterThan(0);
      } finally {
        await reread.close();
      }
    }
    // The writer continued across rounds, so documents went through many versions.
    expect(maxVersion).toBeGreaterThan(6);
    console.log(
      `crash rounds done; torn journal tails found right after kill -9: ${tornTails}; highest version ${maxVersion}; acknowledged writes checked: ${ackedTotal}`,
    );
  }, 90_000);

  it('survives kill -9 in the middle of a journal rewrite: the old journal stays whole and the temp file is never read', async () => {
    const folder = await mkdtemp(path.join(os.tmpdir(), 'mailgate-compact-crash-'));
    const docsDir = path.join(folder, 'store', 'docs');
    let killedMidRewrite = 0;
    try {
      for (let round = 0; round < 12 && killedMidRewrite < 2; round++) {
        const writer = startWriter(folder, 'compact');
        await writer.ready();
        // Kill as soon as a rewrite's temp file shows up (a 12 MB rewrite takes tens of milliseconds).
        const deadline = Date.now() + 5_000;
        let sawTemp = false;
        while (!sawTemp && Date.now() < deadline) {
          sawTemp = (await readdir(docsDir)).some((f) => f.endsWith('.tmp'));
          if (!sawTemp) await sleep(1);
        }
        writer.child.kill('SIGKILL');
        await writer.exited;
        const leftovers = (await readdir(docsDir)).filter((f) => f.endsWith('.tmp'));
        if (leftovers.length > 0) killedMidRewrite++;
        const acked = acknowledged(writer.output().stdout);
        expect(acked.docs.size).toBeGreaterThan(0);
        await checkRawJournal(path.join(docsDir, 'bulk.jsonl'));

        const store = await createFileStore(folder);
        try {
          const docs = await store.list<{ atVersion: number }>('bulk');
          expect(docs).toHaveLength(3000);
          for (const doc of docs) expect(doc.value.atVersion).toBe(doc.version);
          for (const [id, version] of acked.docs)
            expect((await store.get('bulk', id))?.version ?? 0).toBeGreaterThanOrEqual(version);
          expect((await readdir(docsDir)).filter((f) => f.endsWith('.tmp'))).toEqual([]);
        } finally {
          await store.close();
        }
      }
      expect(killedMidRewrite, 'kills that landed while a rewrite temp file existed').toBeGreaterThan(0);
      console.log(`compaction crash: ${killedMidRewrite} kill(s) landed mid-rewrite`);
    } finally {
      await rm(folder, { recursive: true, force: true });
    }
  }, 120_000);

  it('a failed journal write stops the store: every operation and ping() fail naming the file and the reason', async () => {
    const folder = await mkdtemp(path.join(os.tmpdir(), 'mailgate-write-failure-'));
    try {
      const store = await createFileStore(folder);
      const kept = await store.put('kept', 'a', { n: 1 });
      // A journal that cannot be written: /dev/full (every write fails with ENOSPC, like a full disk) or, where
      // there is none, a folder in its place (EISDIR).
      const journal = path.join(folder, 'store', 'docs', 'broken.jsonl');
      const devFull = toolForTests('devFull');
      if (devFull) await symlink(devFull, journal);
      else await mkdir(journal);
      const reason = devFull ? 'ENOSPC' : 'EISDIR';
      const failed = await store.put('broken', 'x', { n: 1 }).catch((err: unknown) => err);
      expect(failed).toBeInstanceOf(StoreUnavailableError);
      expect((failed as Error).message).toContain(journal);
      expect((failed as Error).message).toContain(reason);
      // Refused from then on, reads included: memory holds a write the disk does not.
      await expect(store.ping()).rejects.toBe(failed);
      await expect(store.get('kept', 'a')).rejects.toBe(failed);
      await expect(store.put('kept', 'a', { n: 2 })).rejects.toBe(failed);
      await expect(store.list('kept')).rejects.toBe(failed);
      await expect(store.append('audit', { n: 1 })).rejects.toBe(failed);
      await store.close();

      // After the disk is fixed, a restart has everything that was acknowledged and nothing that was not.
      await rm(journal, { recursive: true });
      const reopened = await createFileStore(folder);
      try {
        expect(await reopened.get('kept', 'a')).toEqual(kept);
        expect(await reopened.get('broken', 'x')).toBeNull();
        await reopened.ping();
      } finally {
        await reopened.close();
      }
    } finally {
      await rm(folder, { recursive: true, force: true });
    }
  });

  it('a schedule file rewritten in pieces while its entries keep moving loses none of them', async () => {
    const folder = await mkdtemp(path.join(os.tmpdir(), 'mailgate-schedule-rewrite-'));
    try {
      const store = await createFileStore(folder);
      const ids = Array.from({ length: 40_000 }, (_, i) => `message-with-a-longish-id-${String(i).padStart(6, '0')}`);
      await Promise.all(ids.map((id, i) => store.schedule('q', id, 1_000 + i)));
      // Claims add a line per id; past four lines per entry the file is rewritten (over 1 MB: several pieces).
      for (let round = 0; round < 3; round++)
        expect(await store.claimDue('q', 1e12 + 10 * round, 1, ids.length)).toHaveLength(ids.length);
      const expected = new Set(ids);
      let moving = true;
      let moves = 0;
      const move = (): void => {
        if (!moving) return;
        // Not awaited: entries move in memory while the rewrite is being written.
        for (let k = 0; k < 50; k++, moves++) {
          const id = ids[(moves * 7919) % ids.length]!;
          if (moves % 3 === 0) expected.delete(id);
          else expected.add(id);
          void (moves % 3 === 0 ? store.unschedule('q', id) : store.schedule('q', id, moves % 5));
        }
        setImmediate(move);
      };
      const trigger = store.schedule('q', ids[0]!, 0);
      move();
      await trigger;
      // The rewrite's end is not visible from outside the store: the moves go on for a while that covers it.
      await sleep(300);
      moving = false;
      expect(moves).toBeGreaterThan(100);
      expect((await store.scheduleStats('q')).count).toBe(expected.size);
      await store.close();
      const reopened = await createFileStore(folder);
      try {
        const after = await reopened.claimDue('q', 2e12, 1, ids.length + 1);
        expect(after.length).toBe(expected.size);
        expect(new Set(after)).toEqual(expected);
      } finally {
        await reopened.close();
      }
    } finally {
      await rm(folder, { recursive: true, force: true });
    }
  }, 60_000);

  it('opens a data folder of the file-per-document layout, moves it into journals and deletes the old files', async () => {
    const folder = await mkdtemp(path.join(os.tmpdir(), 'mailgate-migrate-'));
    try {
      const docsDir = path.join(folder, 'store', 'docs');
      const oldFile = async (
        collection: string,
        id: string,
        version: number,
        value: unknown,
        name = `${encodeFileName(id)}.json`,
      ) => {
        await mkdir(path.join(docsDir, collection), { recursive: true, mode: 0o700 });
        await writeFile(path.join(docsDir, collection, name), `${JSON.stringify({ id, version, value })}\n`, {
          mode: 0o600,
        });
      };
      const longId = 'L'.repeat(300);
      await oldFile('things', 'a/b', 3, { n: 'slash' });
      await oldFile('things', 'CAPS', 1, { n: 'caps' });
      await oldFile('things', longId, 2, { n: 'long' });
      // A temp file of a write killed before its rename is not a document.
      await writeFile(
        path.join(docsDir, 'things', `.${encodeFileName('ghost')}.json.123.4.tmp`),
        '{"id":"ghost","version":1,"value":{}}\n',
      );
      // A migration cut off after its journal was written: old files and journal both there, the journal is newer.
      await oldFile('half', 'x', 1, { n: 'old x' });
      await oldFile('half', 'y', 4, { n: 'y' });
      await oldFile('half', 'gone', 2, { n: 'deleted later' });
      await writeFile(
        path.join(docsDir, 'half.jsonl'),
        `${JSON.stringify({ id: 'x', version: 2, value: { n: 'new x' } })}\n${JSON.stringify({ id: 'gone', deleted: true })}\n`,
        { mode: 0o600 },
      );
      const schedules = path.join(folder, 'store', 'schedules');
      await mkdir(schedules, { recursive: true });
      await writeFile(path.join(schedules, 'q.jsonl'), '["s","x",5]\n');

      const expectMigrated = async () => {
        const store = await createFileStore(folder);
        try {
          expect(await store.collections()).toEqual(['half', 'things']);
          expect(await store.list('things')).toEqual([
            { id: 'CAPS', version: 1, value: { n: 'caps' } },
            { id: longId, version: 2, value: { n: 'long' } },
            { id: 'a/b', version: 3, value: { n: 'slash' } },
          ]);
          expect(await store.list('half')).toEqual([
            { id: 'x', version: 2, value: { n: 'new x' } },
            { id: 'y', version: 4, value: { n: 'y' } },
          ]);
          expect(await store.scheduleStats('q')).toEqual({ count: 1, earliestDueAt: 5 });
          // Versions carry on from the old files.
          expect((await store.put('things', 'a/b', { n: 'next' }, { ifVersion: 3 })).version).toBe(4);
          expect(await store.put('things', 'a/b', { n: 'slash' }, { ifVersion: 4 })).toMatchObject({ version: 5 });
        } finally {
          await store.close();
        }
        expect((await readdir(docsDir)).sort()).toEqual(['half.jsonl', 'things.jsonl']);
        for (const file of ['half.jsonl', 'things.jsonl'])
          expect((await stat(path.join(docsDir, file))).mode & 0o777).toBe(0o600);
      };
      await expectMigrated();
      expect((await readFile(path.join(docsDir, 'half.jsonl'), 'utf8')).trim().split('\n')).toHaveLength(2);
      // Opening again reads the journals alone (the versions moved on by the writes above).
      const store = await createFileStore(folder);
      try {
        expect((await store.get('things', 'a/b'))?.version).toBe(5);
        expect(await store.get('things', 'ghost')).toBeNull();
      } finally {
        await store.close();
      }
    } finally {
      await rm(folder, { recursive: true, force: true });
    }
  });

  it('a second process refuses the data folder while it is open, naming the folder', async () => {
    const store = await createFileStore(dir);
    try {
      const other = startWriter(dir, 'open');
      const { code } = await other.exited;
      expect(code).toBe(1);
      const { stderr } = other.output();
      expect(stderr).toContain(`The data folder ${dir} is already in use by process ${process.pid}`);
      expect(stderr).toContain('REDIS_URL');
      expect(stderr).toContain(`delete the lock file`);
      // The same process cannot open it twice either.
      await expect(createFileStore(dir)).rejects.toThrow(/already in use/);
    } finally {
      await store.close();
    }
    // A lock left by a pid that now belongs to another program (here: sleep) is stale.
    const stranger = spawn('sleep', ['30'], { stdio: 'ignore' });
    try {
      await writeFile(path.join(dir, 'store', '.lock'), `${stranger.pid}\n`);
      const reopened = await createFileStore(dir);
      await reopened.close();
    } finally {
      stranger.kill('SIGKILL');
    }
    const after = startWriter(dir, 'open');
    expect((await after.exited).code).toBe(0);
    expect(after.output().stdout).toContain('opened');
  }, 30_000);

  it('of 6 processes starting together on a stale lock exactly one gets the folder', async () => {
    const folder = await mkdtemp(path.join(os.tmpdir(), 'mailgate-lock-race-'));
    try {
      const dead = spawn('true', { stdio: 'ignore' });
      await new Promise((r) => dead.on('exit', r));
      await (await createFileStore(folder)).close();
      await writeFile(path.join(folder, 'store', '.lock'), `${dead.pid}\n`);
      const racers = Array.from({ length: 6 }, () => startWriter(folder, 'hold'));
      // Whoever gets the folder keeps it until every racer has either opened it too or given up.
      const decided = (r: (typeof racers)[number]) => r.child.exitCode !== null || r.output().stdout.includes('opened');
      await expect.poll(() => racers.every(decided), { timeout: 45_000, interval: 20 }).toBe(true);
      for (const r of racers) r.child.stdin?.end();
      const results = await Promise.all(racers.map((r) => r.exited));
      expect(results.filter((r) => r.code === 0)).toHaveLength(1);
      for (const [i, r] of results.entries())
        if (r.code !== 0) expect(racers[i]!.output().stderr).toContain('is already in use by process');
    } finally {
      await rm(folder, { recursive: true, force: true });
    }
  }, 60_000);
});
