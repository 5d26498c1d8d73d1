import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { copyFile, mkdir, mkdtemp, rm, symlink } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AuditEntry } from '../../src/admin/audit.js';
import { Keyring } from '../../src/crypto/keyring.js';
import { createFileStore } from '../../src/store/file-store.js';
import { createRedisStore } from '../../src/store/redis-store.js';
import type { Store } from '../../src/store/store.js';
import { redisUrlForTests, uniquePrefix } from '../fakes/redis.js';
import { toolForTests } from '../fakes/tools.js';

const ROOT = path.resolve(import.meta.dirname, '../..');
const BIN = path.join(ROOT, 'bin', 'mailgate.js');

const oldKey = { id: 'old', key: randomBytes(32) };
const newKey = { id: 'new', key: randomBytes(32) };
const keyList = (...keys: { id: string; key: Buffer }[]) =>
  keys.map((k) => `${k.id}:${k.key.toString('base64')}`).join(',');
const sessionSecret = randomBytes(32).toString('hex');

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/** Runs the real CLI in a child process with only the given environment (plus PATH and HOME). */
function runCli(
  args: string[],
  env: Record<string, string>,
  options: { cwd?: string; bin?: string; onStderr?: (text: string, kill: (s: NodeJS.Signals) => void) => void } = {},
): Promise<Run> {
  const started = Date.now();
  const child = spawn(process.execPath, [options.bin ?? BIN, ...args], {
    cwd: options.cwd ?? ROOT,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? os.tmpdir(), ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString();
    options.onStderr?.(stderr, (s) => child.kill(s));
  });
  return new Promise((resolve) =>
    child.on('close', (code) => resolve({ code, stdout, stderr, ms: Date.now() - started })),
  );
}

async function seed(store: Store, documents: number): Promise<void> {
  const keyring = new Keyring([oldKey]);
  const batch: Promise<unknown>[] = [];
  for (let i = 0; i < documents; i++) {
    const id = `srv-${i}`;
    batch.push(
      store.put('oauth_grants', id, {
        mailbox: `user${i}@example.com`,
        tokens: {
          refreshToken: keyring.seal(`rt-${i}`, { collection: 'oauth_grants', id, field: 'tokens.refreshToken' }),
          accessToken: keyring.seal(`at-${i}`, { collection: 'oauth_grants', id, field: 'tokens.accessToken' }),
        },
      }),
    );
    if (batch.length >= 500) await Promise.all(batch.splice(0));
  }
  await Promise.all(batch);
}

function cliSuite(
  name: string,
  setup: () => Promise<{ env: Record<string, string>; open: () => Promise<Store>; cleanup: () => Promise<void> }>,
) {
  describe(name, () => {
    let env: Record<string, string>;
    let open: () => Promise<Store>;
    let cleanup: () => Promise<void>;
    beforeAll(async () => {
      ({ env, open, cleanup } = await setup());
      const store = await open();
      await seed(store, 3000);
      await store.close();
    });
    afterAll(async () => cleanup());

    it('keys status counts values per key and keys rotate refuses while a needed key is missing', async () => {
      const status = await runCli(['keys', 'status'], { ...env, MAILGATE_ENCRYPTION_KEYS: keyList(newKey, oldKey) });
      expect(status.code).toBe(0);
      expect(status.stdout).toContain('3000 documents, 6000 sealed values');
      expect(status.stdout).toMatch(/new\s+yes\s+0\s+seals new values/);
      expect(status.stdout).toMatch(/old\s+no\s+6000\s+still needed: run keys rotate/);

      const refused = await runCli(['keys', 'rotate'], { ...env, MAILGATE_ENCRYPTION_KEYS: keyList(newKey) });
      expect(refused.code).toBe(1);
      expect(refused.stderr).toMatch(/key "old" protects 6000 stored values/);
      expect(refused.stderr).toContain('Nothing was changed.');
      const missingStatus = await runCli(['keys', 'status'], { ...env, MAILGATE_ENCRYPTION_KEYS: keyList(newKey) });
      expect(missingStatus.code).toBe(1);
      expect(missingStatus.stdout).toMatch(/old\s+missing\s+6000\s+NOT CONFIGURED/);
    });

    it('keys rotate stops cleanly on Ctrl-C, resumes, ends with the per-key table and an audit entry', async () => {
      const withBoth = { ...env, MAILGATE_ENCRYPTION_KEYS: keyList(newKey, oldKey) };
      let sent = false;
      const interrupted = await runCli(['keys', 'rotate'], withBoth, {
        onStderr: (text, kill) => {
          if (!sent && text.includes('progress:')) {
            sent = true;
            kill('SIGINT');
          }
        },
      });
      expect(interrupted.code).toBe(130);
      expect(interrupted.stderr).toContain('Stopping after the documents in progress');
      expect(interrupted.stdout).toMatch(/Interrupted: \d+ values re-sealed/);
      expect(interrupted.stdout).toContain('Run `mailgate keys rotate` again');
      const doneFirst = Number(/Interrupted: (\d+) values/.exec(interrupted.stdout)?.[1]);
      expect(doneFirst).toBeLessThan(6000);

      const finished = await runCli(['keys', 'rotate'], withBoth);
      expect(finished.code).toBe(0);
      // Plain progress lines when stderr is not a terminal.
      expect(finished.stderr).toMatch(/progress: \d+\/\d+ values \(\d+%\), \d+ values\/s/);
      const doneSecond = Number(/Done: (\d+) values re-sealed/.exec(finished.stdout)?.[1]);
      expect(doneFirst + doneSecond).toBe(6000);
      expect(finished.stdout).toMatch(/new\s+yes\s+6000/);
      expect(finished.stdout).toMatch(/old\s+no\s+0\s+protects nothing: safe to remove/);

      const again = await runCli(['keys', 'rotate'], withBoth);
      expect(again.code).toBe(0);
      expect(again.stdout).toContain('Done: 0 values re-sealed');

      // The old key can go now: the values open with the new key alone.
      const store = await open();
      try {
        const doc = await store.get<{ tokens: { refreshToken: string } }>('oauth_grants', 'srv-7');
        expect(
          new Keyring([newKey]).open(doc!.value.tokens.refreshToken, {
            collection: 'oauth_grants',
            id: 'srv-7',
            field: 'tokens.refreshToken',
          }),
        ).toBe('rt-7');
        const audit = await store.readLog<AuditEntry>('audit', { limit: 10 });
        const rotations = audit.filter((e) => e.entry.action === 'keys.rotate');
        expect(rotations.map((e) => e.entry.outcome)).toEqual(['success', 'success', 'failure', 'failure']);
        expect(rotations[0]!.entry.actor.type).toBe('cli');
        expect(rotations[1]!.entry.detail).toMatchObject({
          activeKeyId: 'new',
          valuesPerKeyAfter: ['new=6000', 'old=0'],
        });
        expect(rotations[2]!.entry.detail).toMatchObject({ interrupted: true });
        expect(rotations[3]!.entry.detail).toMatchObject({ reason: 'missing_keys', missingKeyIds: ['old'] });
      } finally {
        await store.close();
      }
    }, 60_000);
  });
}

cliSuite('CLI on the file store', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'mailgate-cli-'));
  return {
    env: { MAILGATE_DATA_DIR: dir },
    open: () => createFileStore(dir),
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
});

const redisUrl = redisUrlForTests();
describe.skipIf(!redisUrl)('redis', () => {
  cliSuite('CLI on Redis', async () => {
    const prefix = uniquePrefix('cli');
    return {
      env: { REDIS_URL: redisUrl!, MAILGATE_REDIS_PREFIX: prefix, MAILGATE_SESSION_SECRETS: sessionSecret },
      open: () => createRedisStore({ url: redisUrl!, prefix }),
      cleanup: async () => undefined,
    };
  });
});

describe('CLI failures and entry points', () => {
  it('fails fast, changing nothing, when Redis is unreachable', async () => {
    const run = await runCli(['keys', 'rotate'], {
      REDIS_URL: 'redis://127.0.0.1:1',
      MAILGATE_ENCRYPTION_KEYS: keyList(newKey, oldKey),
      MAILGATE_SESSION_SECRETS: sessionSecret,
    });
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(
      /Cannot open the store in Redis \(REDIS_URL\): Cannot reach Redis at redis:\/\/127\.0\.0\.1:1/,
    );
    expect(run.stderr).toContain('Nothing was changed.');
    expect(run.ms).toBeLessThan(8_000);
  });

  it('refuses a data folder in use by the running service', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'mailgate-cli-busy-'));
    const store = await createFileStore(dir);
    try {
      const run = await runCli(['keys', 'status'], { MAILGATE_DATA_DIR: dir });
      expect(run.code).toBe(2);
      expect(run.stderr).toContain(`is already in use by process ${process.pid}`);
    } finally {
      await store.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('reports bad configuration and unknown commands with exit code 2', async () => {
    const bad = await runCli(['keys', 'status'], { MAILGATE_ENCRYPTION_KEYS: 'k1:short' });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/MAILGATE_ENCRYPTION_KEYS: entry 1 \(k1\): key is \d+ bytes, expected 32/);
    const unknown = await runCli(['nope'], {});
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('Unknown command "nope"');
    const usage = await runCli(['help', 'keys', 'rotate'], {});
    expect(usage.code).toBe(0);
    expect(usage.stdout).toContain('can be stopped with Ctrl-C and run again');
  });

  it.skipIf(!toolForTests('script'))('shows a progress bar with count, rate and time left on a terminal', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'mailgate-cli-tty-'));
    try {
      const store = await createFileStore(dir);
      await seed(store, 300);
      await store.close();
      // util-linux `script` runs the CLI on a pseudo-terminal, so stderr.isTTY is true as for a person.
      const command = `${JSON.stringify(process.execPath)} ${JSON.stringify(BIN)} keys rotate`;
      const run = await new Promise<Run>((resolve) => {
        const child = spawn(toolForTests('script')!, ['-qec', command, '/dev/null'], {
          cwd: ROOT,
          env: {
            PATH: process.env.PATH ?? '',
            HOME: process.env.HOME ?? os.tmpdir(),
            TERM: 'xterm',
            MAILGATE_DATA_DIR: dir,
            MAILGATE_ENCRYPTION_KEYS: keyList(newKey, oldKey),
          },
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        let stdout = '';
        child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
        child.on('close', (code) => resolve({ code, stdout, stderr: '', ms: 0 }));
      });
      expect(run.code).toBe(0);
      expect(run.stdout).toMatch(/Re-sealing \[[█░]+\] 600\/600 values \| \d+ values\/s \| \d+s left/);
      expect(run.stdout).toContain('Done: 600 values re-sealed');
      expect(run.stdout).not.toContain('progress:');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('`npx mailgate` works from the repository root from source, and a built copy runs dist/cli.js', async () => {
    const viaNpx = await new Promise<Run>((resolve) => {
      const started = Date.now();
      const child = spawn('npx', ['--no-install', 'mailgate', 'help'], {
        cwd: ROOT,
        env: { ...process.env, MAILGATE_CLI_FROM_SOURCE: '1' },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      child.on('close', (code) => resolve({ code, stdout, stderr, ms: Date.now() - started }));
    });
    expect(viaNpx.stderr).toBe('');
    expect(viaNpx.code).toBe(0);
    expect(viaNpx.stdout).toMatch(/keys rotate\s+re-seal every stored secret/);

    // A built layout: bin/ next to dist/ and no src/, so only the compiled CLI can answer.
    const copy = await mkdtemp(path.join(os.tmpdir(), 'mailgate-built-'));
    try {
      await mkdir(path.join(copy, 'bin'));
      await copyFile(BIN, path.join(copy, 'bin', 'mailgate.js'));
      await copyFile(path.join(ROOT, 'package.json'), path.join(copy, 'package.json'));
      await symlink(path.join(ROOT, 'node_modules'), path.join(copy, 'node_modules'));
      const tsc = await new Promise<number | null>((resolve) => {
        const child = spawn(
          process.execPath,
          [
            path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'),
            '-p',
            path.join(ROOT, 'tsconfig.build.json'),
            '--outDir',
            path.join(copy, 'dist'),
          ],
          { stdio: 'ignore' },
        );
        child.on('close', resolve);
      });
      // Files of other areas may not typecheck mid-change; tsc still emits, and the CLI must be there.
      expect([0, 1, 2]).toContain(tsc);
      const built = await runCli(['help'], {}, { cwd: copy, bin: path.join(copy, 'bin', 'mailgate.js') });
      expect(built.stderr).toBe('');
      expect(built.code).toBe(0);
      expect(built.stdout).toMatch(/keys status\s+show how many stored values/);
    } finally {
      await rm(copy, { recursive: true, force: true });
    }
  }, 90_000);
});
