import { spawn } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createFileStore } from '../../src/store/file-store.js';

const WRITER = path.resolve(import.meta.dirname, '../fakes/file-store-writer.ts');

function startWriter(dir: string, mode: 'write' | 'open' | 'hold') {
  const child = spawn(process.execPath, ['--import', 'tsx', WRITER, dir, mode], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  const ready = async (): Promise<void> => {
    while (!stdout.includes('ready')) {
      if (child.exitCode !== null) throw new Error(`writer exited early: ${stderr}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  };
  return { child, exited, ready, output: () => ({ stdout, stderr }) };
}

describe('file store crash safety', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'mailgate-crash-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('survives repeated kill -9 mid-write: every document parses, versions agree, temp files are never documents', async () => {
    let tempFilesSeen = 0;
    let maxVersion = 0;
    let ackedTotal = 0;
    for (let round = 0; round < 6; round++) {
      const writer = startWriter(dir, 'write');
      await writer.ready();
      await new Promise((r) => setTimeout(r, 150 + Math.random() * 350));
      writer.child.kill('SIGKILL');
      expect((await writer.exited).signal).toBe('SIGKILL');

      // What the writer saw acknowledged before it died.
      const acked = { docs: new Map<string, number>(), logIds: new Set<string>(), scheduled: new Set<string>() };
      for (const line of writer.output().stdout.split('\n')) {
        const [kind, a, b] = line.split(' ');
        if (kind === 'D') acked.docs.set(a!, Math.max(acked.docs.get(a!) ?? 0, Number(b)));
        else if (kind === 'L') acked.logIds.add(a!);
        else if (kind === 'S') acked.scheduled.add(a!);
      }
      expect(acked.docs.size).toBeGreaterThan(0);

      const collectionDir = path.join(dir, 'store', 'docs', 'crash');
      const files = await readdir(collectionDir);
      tempFilesSeen += files.filter((f) => f.endsWith('.tmp')).length;
      // Every file named like a document is complete JSON right after the kill, before any recovery.
      for (const file of files.filter((f) => f.endsWith('.json'))) {
        const parsed = JSON.parse(await readFile(path.join(collectionDir, file), 'utf8')) as { version: number; value: { atVersion: number } };
        expect(parsed.value.atVersion).toBe(parsed.version);
      }

      // The stale lock of the killed writer does not block reopening; recovery drops temp files.
      const store = await createFileStore(dir);
      try {
        const docs = await store.list<{ atVersion: number; payload: string }>('crash');
        expect(docs.length).toBeGreaterThan(0);
        for (const doc of docs) {
          expect(doc.id).toMatch(/^doc-\d-\d+$/);
          expect(doc.value.atVersion).toBe(doc.version);
          maxVersion = Math.max(maxVersion, doc.version);
        }
        expect((await readdir(collectionDir)).filter((f) => !f.endsWith('.json'))).toEqual([]);
        const log = await store.readLog<{ lane: number; i: number }>('crash-log', { limit: 1_000_000 });
        expect(log.length).toBeGreaterThan(0);
        expect(log.map((e) => e.id)).toEqual(log.map((e) => e.id).sort().reverse());
        // Nothing acknowledged was lost: documents at least at the acknowledged version, log entries, schedules.
        for (const [id, version] of acked.docs) expect((await store.get('crash', id))?.version ?? 0).toBeGreaterThanOrEqual(version);
        const logIds = new Set(log.map((e) => e.id));
        for (const id of acked.logIds) expect(logIds.has(id)).toBe(true);
        const stats = await store.scheduleStats('crash-q');
        expect(stats.count).toBeGreaterThanOrEqual(acked.scheduled.size);
        const claimed = new Set(await store.claimDue('crash-q', Date.now() + 1e12, 1, 1_000_000));
        for (const id of acked.scheduled) expect(claimed.has(id)).toBe(true);
        ackedTotal += acked.docs.size + acked.logIds.size + acked.scheduled.size;
        // A write after recovery appends cleanly (no glued torn line).
        const id = await store.append('crash-log', { after: round });
        expect((await store.readLog('crash-log', { limit: 1 }))[0]?.id).toBe(id);
      } finally {
        await store.close();
      }
    }
    // The writer continued across rounds, so documents went through many versions.
    expect(maxVersion).toBeGreaterThan(6);
    console.log(`crash rounds done; temp files found right after kill -9: ${tempFilesSeen}; highest version ${maxVersion}; acknowledged writes checked: ${ackedTotal}`);
  }, 60_000);

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
      const results = await Promise.all(racers.map((r) => r.exited));
      expect(results.filter((r) => r.code === 0)).toHaveLength(1);
      for (const [i, r] of results.entries()) if (r.code !== 0) expect(racers[i]!.output().stderr).toContain('is already in use by process');
    } finally {
      await rm(folder, { recursive: true, force: true });
    }
  }, 60_000);
});
