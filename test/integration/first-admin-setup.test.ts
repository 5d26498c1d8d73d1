import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../fakes/app.js';
import { redisUrlForTests } from '../fakes/redis.js';

let app: TestApp | undefined;

afterEach(async () => {
  await app?.close();
  app = undefined;
});

describe('first-run setup on the embedded store', () => {
  it('creates the first sysadmin only with the one-time code from the data folder, once', async () => {
    app = await startTestApp();
    const setup = app.services.firstAdminSetup!;
    expect(await setup.open()).toBe(true);
    const codeFile = path.join(app.config.MAILGATE_DATA_DIR, 'first-admin-code.txt');
    expect((await stat(codeFile)).mode & 0o777).toBe(0o600);
    const code = (await readFile(codeFile, 'utf8')).trim();
    expect(code).toMatch(/^[A-Za-z0-9_-]{24}$/);

    const browser = app.anonymousSession();
    const page = await browser.get('/setup');
    expect(page.res.status).toBe(200);
    expect(page.text).toContain('first-admin-code.txt');
    expect(page.text).not.toContain(code);

    const wrong = await browser.postForm('/setup', {
      code: 'not-the-code',
      email: 'root@example.com',
      password: 'a-long-password-1',
    });
    expect(wrong.res.status).toBe(403);
    expect(await app.services.users.count()).toBe(0);

    const weak = await browser.postForm('/setup', { code, email: 'root@example.com', password: 'short' });
    expect(weak.res.status).toBe(400);
    expect(weak.text).toContain('password');
    expect(await app.services.users.count()).toBe(0);

    const noCsrf = await browser.postForm(
      '/setup',
      { code, email: 'root@example.com', password: 'a-long-password-1' },
      { csrf: false },
    );
    expect(noCsrf.res.status).toBe(403);
    expect(await app.services.users.count()).toBe(0);

    const ok = await browser.postForm('/setup', { code, email: 'Root@Example.com', password: 'a-long-password-1' });
    expect(ok.res.status).toBe(303);
    expect(ok.res.headers.get('location')).toBe('/admin/smtp-servers');
    expect((await app.services.users.list()).map((u) => [u.email, u.role])).toEqual([['root@example.com', 'sysadmin']]);
    await expect(stat(codeFile)).rejects.toThrow(/ENOENT/);
    const admin = await browser.get('/admin/smtp-servers');
    expect(admin.res.status).toBe(200);

    // The code worked once; the page is gone now that a user exists.
    const again = await app.anonymousSession().get('/setup');
    expect(again.res.status).toBe(303);
    expect(again.res.headers.get('location')).toBe('/login');
    expect(await setup.open()).toBe(false);
    const audit = await app.services.audit.list({ limit: 10 });
    expect(JSON.stringify(audit)).toContain('setup page');
    expect(JSON.stringify(audit)).not.toContain(code);
  });

  it('does not open when a user exists', async () => {
    app = await startTestApp();
    await app.createUser('admin');
    expect(await app.services.firstAdminSetup!.open()).toBe(false);
    const page = await app.anonymousSession().get('/setup');
    expect(page.res.status).toBe(303);
  });
});

describe.skipIf(!redisUrlForTests())('first-run setup on Redis', () => {
  it('does not exist: the CLI creates the first admin while instances run', async () => {
    app = await startTestApp({ store: 'redis' });
    expect(app.services.firstAdminSetup).toBeNull();
    const page = await app.anonymousSession().get('/setup');
    expect(page.res.status).toBe(404);
  });
});
