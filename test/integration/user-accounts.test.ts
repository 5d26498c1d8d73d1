import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AUDIT_LOG, type AuditEntry } from '../../src/admin/audit.js';
import { HttpSession, startTestApp, type TestApp } from '../fakes/app.js';
import { redisUrlForTests } from '../fakes/redis.js';
import { cliInProcess } from '../fakes/cli.js';

/** Changing a password (own form, CLI), disabling and enabling users: sessions end on every instance. */

const cli = cliInProcess;

async function auditActions(app: TestApp, target: string): Promise<string[]> {
  const rows = await app.store.readLog<AuditEntry>(AUDIT_LOG, { limit: 1000 });
  return rows.filter((r) => r.entry.target === target).map((r) => `${r.entry.action}:${r.entry.outcome}`);
}

async function loggedIn(app: TestApp, email: string, password: string): Promise<HttpSession> {
  const s = new HttpSession(app.url);
  await s.login(email, password);
  return s;
}

async function loginStatus(app: TestApp, email: string, password: string): Promise<number> {
  const s = new HttpSession(app.url);
  await s.get('/login');
  return (await s.postForm('/login', { email, password })).res.status;
}

describe("changing one's own password (file store)", () => {
  let app: TestApp;
  beforeAll(async () => {
    app = await startTestApp();
  });
  afterAll(async () => {
    await app?.close();
  });

  it('needs the CSRF token and the current password, names bad fields, then ends the other sessions and keeps this one', async () => {
    const { email, password } = await app.createUser('admin');
    const here = await loggedIn(app, email, password);
    const elsewhere = await loggedIn(app, email, password);
    const page = await here.get('/account/password');
    expect(page.res.status).toBe(200);
    for (const field of ['currentPassword', 'newPassword', 'newPasswordAgain'])
      expect(page.text).toContain(`name="${field}"`);
    const newPassword = 'a-brand-new-password-1';

    expect(
      (
        await here.postForm(
          '/account/password',
          { currentPassword: password, newPassword, newPasswordAgain: newPassword },
          { csrf: false },
        )
      ).res.status,
    ).toBe(403);
    const wrong = await here.postForm('/account/password', {
      currentPassword: 'not-the-password',
      newPassword,
      newPasswordAgain: newPassword,
    });
    expect(wrong.res.status).toBe(400);
    expect(wrong.text).toContain('id="currentPassword-error"');
    expect(wrong.text).toContain('This is not your current password.');
    expect(wrong.text).toMatch(/id="currentPassword"[^>]*aria-invalid="true" aria-describedby="currentPassword-error"/);
    const mismatch = await here.postForm('/account/password', {
      currentPassword: password,
      newPassword,
      newPasswordAgain: `${newPassword}x`,
    });
    expect(mismatch.res.status).toBe(400);
    expect(mismatch.text).toContain('id="newPasswordAgain-error"');
    const short = await here.postForm('/account/password', {
      currentPassword: password,
      newPassword: 'short',
      newPasswordAgain: 'short',
    });
    expect(short.res.status).toBe(400);
    expect(short.text).toContain('Use 12 characters or more.');
    // Nothing changed so far: the other session still works, the old password still logs in.
    expect((await elsewhere.fetch('/admin/audit')).status).toBe(200);
    expect(await loginStatus(app, email, password)).toBe(303);

    const changed = await here.postForm('/account/password', {
      currentPassword: password,
      newPassword,
      newPasswordAgain: newPassword,
    });
    expect(changed.res.status).toBe(303);
    expect((await here.get('/account/password')).text).toContain('Password changed');
    expect((await here.fetch('/admin/audit')).status).toBe(200);
    expect((await elsewhere.fetch('/admin/audit')).status).toBe(303);
    expect(await loginStatus(app, email, password)).toBe(401);
    expect(await loginStatus(app, email, newPassword)).toBe(303);
    const actions = await auditActions(app, `user:${email}`);
    expect(actions).toContain('user.password_change:success');
    expect(actions).toContain('user.password_change:failure');
    const rows = await app.store.readLog<AuditEntry>(AUDIT_LOG, { limit: 1000 });
    expect(JSON.stringify(rows)).not.toContain(newPassword);
  }, 120_000);
});

describe.skipIf(!redisUrlForTests())('users passwd, disable and enable against two instances on Redis', () => {
  let a: TestApp;
  let b: TestApp;
  beforeAll(async () => {
    a = await startTestApp({ store: 'redis' });
    b = await startTestApp({ shareWith: a });
  });
  afterAll(async () => {
    await b?.close();
    await a?.close();
  });

  it('a disabled user cannot log in and their sessions end on both instances at the next request; enable lets them back', async () => {
    const { email, password } = await a.createUser('admin');
    const onA = await loggedIn(a, email, password);
    const onB = await loggedIn(b, email, password);
    const bystander = await b.browserSession('sysadmin');
    expect((await onA.fetch('/admin/audit')).status).toBe(200);

    const disabled = await cli(a.env, 'users', 'disable', email.toUpperCase());
    expect(disabled.code).toBe(0);
    expect((await onA.fetch('/admin/audit')).status).toBe(303);
    expect((await onB.fetch('/admin/audit')).status).toBe(303);
    expect((await bystander.fetch('/admin/audit')).status).toBe(200);
    expect(await loginStatus(b, email, password)).toBe(401);
    const listed = await cli(a.env, 'users', 'list');
    expect(listed.stdout).toMatch(new RegExp(`${email.replace(/[.]/g, '\\.')}\\s+admin\\s+disabled`));

    expect((await cli(a.env, 'users', 'enable', email)).code).toBe(0);
    // Enabling does not bring the ended sessions back, but the user can log in again.
    expect((await onA.fetch('/admin/audit')).status).toBe(303);
    expect(await loginStatus(a, email, password)).toBe(303);
    expect(await auditActions(a, `user:${email}`)).toEqual(
      expect.arrayContaining(['user.disable:success', 'user.enable:success']),
    );
  }, 120_000);

  it("users passwd sets a new password and ends the user's sessions everywhere; bad input changes nothing", async () => {
    const { email, password } = await a.createUser('admin');
    const onB = await loggedIn(b, email, password);
    const newPassword = 'set-from-the-cli-123';
    expect((await cli({ ...a.env, MAILGATE_ADMIN_PASSWORD: 'short' }, 'users', 'passwd', email)).code).toBe(1);
    expect(
      (await cli({ ...a.env, MAILGATE_ADMIN_PASSWORD: newPassword }, 'users', 'passwd', 'nobody@example.test')).code,
    ).toBe(1);
    expect((await cli({ ...a.env, MAILGATE_ADMIN_PASSWORD: newPassword }, 'users', 'passwd')).code).toBe(2);
    expect((await onB.fetch('/admin/audit')).status).toBe(200);

    const out = await cli({ ...a.env, MAILGATE_ADMIN_PASSWORD: newPassword }, 'users', 'passwd', email);
    expect(out.code).toBe(0);
    expect(out.stdout + out.stderr).not.toContain(newPassword);
    expect((await onB.fetch('/admin/audit')).status).toBe(303);
    expect(await loginStatus(a, email, password)).toBe(401);
    expect(await loginStatus(b, email, newPassword)).toBe(303);
    expect(await auditActions(a, `user:${email}`)).toContain('user.password_change:success');
  }, 120_000);

  it('the last enabled sysadmin cannot be disabled', async () => {
    const sysadmins = (await a.services.users.list()).filter((u) => u.role === 'sysadmin' && !u.disabled);
    for (const u of sysadmins.slice(1)) expect((await cli(a.env, 'users', 'disable', u.email)).code).toBe(0);
    const last = await cli(a.env, 'users', 'disable', sysadmins[0]!.email);
    expect(last.code).toBe(1);
    expect(last.stderr).toContain('last enabled sysadmin');
    expect((await a.services.users.get(sysadmins[0]!.email))?.disabled).toBe(false);
  });
});
