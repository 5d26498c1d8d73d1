import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { freePort } from '../fakes/net.js';
import { redisUrlForTests, uniquePrefix } from '../fakes/redis.js';

// mailgate as its users run it: `src/main.ts` in a process of its own, configured only by the environment.

const root = path.resolve(import.meta.dirname, '../..');
const children: ChildProcess[] = [];
const dirs: string[] = [];

afterEach(async () => {
  for (const child of children.splice(0)) if (child.exitCode === null) child.kill('SIGKILL');
  for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
});

interface Running {
  child: ChildProcess;
  output: () => string;
  exited: Promise<number | null>;
}

function run(env: Record<string, string>): Running {
  // Only what a newcomer's shell would have: no MAILGATE_* variables leak in from the test run.
  const base = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !k.startsWith('MAILGATE_') && k !== 'REDIS_URL' && k !== 'PORT'),
  );
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
    cwd: root,
    env: { ...base, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  let out = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, output: () => out, exited };
}

async function waitForHealth(url: string, running: Running, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (running.child.exitCode !== null)
      throw new Error(`mailgate exited with ${running.child.exitCode}:\n${running.output()}`);
    try {
      const res = await fetch(`${url}/healthz`);
      if (res.status === 200) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`mailgate did not answer /healthz:\n${running.output()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('the mailgate process', () => {
  it('starts with no configuration on the embedded store, says how to get in, and stops cleanly on SIGTERM', async () => {
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'mailgate-main-'));
    dirs.push(dataDir);
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const running = run({ PORT: String(port), MAILGATE_DATA_DIR: dataDir });
    await waitForHealth(url, running);

    expect((await fetch(`${url}/readyz`)).status).toBe(200);
    const login = await fetch(`${url}/login`);
    expect(login.status).toBe(200);
    expect(await login.text()).toContain('name="password"');
    // The newcomer is told where to log in and how to create the first admin, and where the key file is.
    await expect.poll(() => running.output(), { timeout: 5000 }).toContain('/setup');
    expect(running.output()).toContain(`http://localhost:${port}/login`);
    expect(running.output()).toContain('MAILGATE_ADMIN_EMAIL');
    expect(running.output()).toContain('secrets.json');
    const code = (await readFile(path.join(dataDir, 'first-admin-code.txt'), 'utf8')).trim();
    expect(running.output()).not.toContain(code);

    running.child.kill('SIGTERM');
    expect(await running.exited).toBe(0);
    expect(running.output()).toContain('"msg":"stopped"');
  });

  it('refuses to start with every bad variable listed, before touching anything', async () => {
    const dataDir = path.join(os.tmpdir(), `mailgate-never-${randomBytes(4).toString('hex')}`);
    const running = run({
      PORT: 'eighty',
      MAILGATE_DATA_DIR: dataDir,
      MAILGATE_ENCRYPTION_KEYS: 'k1:short',
      MAILGATE_SEND_DISABLED: 'perhaps',
    });
    expect(await running.exited).toBe(1);
    const out = running.output();
    expect(out).toContain('PORT');
    expect(out).toContain('MAILGATE_ENCRYPTION_KEYS: entry 1 (k1): key is 3 bytes, expected 32');
    expect(out).toContain('MAILGATE_SEND_DISABLED');
    expect(out).not.toMatch(/\n\s+at .+\(.+:\d+:\d+\)/); // no stack trace
    await expect(readFile(path.join(dataDir, 'secrets.json'))).rejects.toThrow(/ENOENT/);
  });

  it('refuses to start when a stored value needs a key that is gone, naming the key id', async () => {
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'mailgate-main-'));
    dirs.push(dataDir);
    const old = `old:${randomBytes(32).toString('base64')}`;
    const fresh = `fresh:${randomBytes(32).toString('base64')}`;
    const port = await freePort();
    const first = run({
      PORT: String(port),
      MAILGATE_DATA_DIR: dataDir,
      MAILGATE_ENCRYPTION_KEYS: old,
      MAILGATE_ADMIN_EMAIL: 'root@example.com',
      MAILGATE_ADMIN_PASSWORD: 'a-long-password-1',
    });
    await waitForHealth(`http://127.0.0.1:${port}`, first);
    // Something sealed: an SMTP server password, through the API with a key made by the CLI-equivalent service path.
    const jar = await loginCookie(`http://127.0.0.1:${port}`);
    const form = new URLSearchParams({
      _csrf: jar.csrf,
      name: 'relay',
      fromAddress: 'a@example.com',
      host: 'smtp.example.com',
      tls: 'on',
      authMethod: 'basic',
      username: 'u',
      password: 'p-secret-value',
    });
    const created = await fetch(`http://127.0.0.1:${port}/admin/smtp-servers`, {
      method: 'POST',
      body: form,
      headers: { cookie: jar.cookie, 'content-type': 'application/x-www-form-urlencoded' },
      redirect: 'manual',
    });
    expect(created.status).toBe(303);
    first.child.kill('SIGTERM');
    expect(await first.exited).toBe(0);

    const second = run({ PORT: String(await freePort()), MAILGATE_DATA_DIR: dataDir, MAILGATE_ENCRYPTION_KEYS: fresh });
    expect(await second.exited).toBe(1);
    expect(second.output()).toContain('key "old" protects 1 stored value');
    expect(second.output()).not.toContain('p-secret-value');
  });
});

describe.skipIf(!redisUrlForTests())('the mailgate process on Redis', () => {
  it('starts with the shared keys and secrets and reports Redis in /readyz', async () => {
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const running = run({
      PORT: String(port),
      REDIS_URL: redisUrlForTests()!,
      MAILGATE_REDIS_PREFIX: uniquePrefix('main'),
      MAILGATE_ENCRYPTION_KEYS: `k1:${randomBytes(32).toString('base64')}`,
      MAILGATE_SESSION_SECRETS: randomBytes(32).toString('base64url'),
    });
    await waitForHealth(url, running);
    const ready = (await (await fetch(`${url}/readyz`)).json()) as { checks: { store: { detail: { kind: string } } } };
    expect(ready.checks.store.detail.kind).toBe('redis');
    // The hint is logged once the workers have started, after the port answers.
    await expect.poll(() => running.output(), { timeout: 10_000 }).toContain('create-admin');
    running.child.kill('SIGTERM');
    expect(await running.exited).toBe(0);
  });
});

/** Logs in through the form like a browser; returns the cookie and a CSRF token for the next form. */
async function loginCookie(url: string): Promise<{ cookie: string; csrf: string }> {
  const csrfOf = (html: string) => /name="_csrf" value="([^"]+)"/.exec(html)?.[1] ?? '';
  const page = await fetch(`${url}/login`);
  let cookie = (page.headers.getSetCookie()[0] ?? '').split(';')[0]!;
  const body = new URLSearchParams({
    _csrf: csrfOf(await page.text()),
    email: 'root@example.com',
    password: 'a-long-password-1',
  });
  const res = await fetch(`${url}/login`, {
    method: 'POST',
    body,
    headers: { cookie, 'content-type': 'application/x-www-form-urlencoded' },
    redirect: 'manual',
  });
  expect(res.status).toBe(303);
  cookie = (res.headers.getSetCookie()[0] ?? cookie).split(';')[0]!;
  const admin = await fetch(`${url}/admin/smtp-servers/new`, { headers: { cookie } });
  return { cookie, csrf: csrfOf(await admin.text()) };
}
