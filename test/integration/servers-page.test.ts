import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type HttpSession, type TestApp } from '../fakes/app.js';

// The servers page shows a page of servers with a link to the next, a search box, and the sending-rate field.

let app: TestApp;
let browser: HttpSession;
beforeAll(async () => {
  app = await startTestApp();
  for (let i = 0; i < 55; i++)
    await app.services.mail.servers.create(
      {
        name: i === 42 ? 'Needle desk' : `Mailbox ${i}`,
        fromAddress: `m${i}@example.com`,
        host: '127.0.0.1',
        port: 2525,
      },
      { actor: { type: 'system', id: 'test' } },
    );
  browser = await app.browserSession('sysadmin');
});
afterAll(async () => {
  await app?.close();
});

const rows = (html: string) => (html.match(/data-server-id="/g) ?? []).length;

describe('servers page', () => {
  it('shows 50 servers and a link to the next page, which shows the rest and no further link', async () => {
    const { res, text } = await browser.get('/admin/smtp-servers');
    expect(res.status).toBe(200);
    expect(rows(text)).toBe(50);
    const next = /href="([^"]*cursor=[^"]+)" rel="next"/.exec(text)?.[1]?.replaceAll('&amp;', '&');
    expect(next).toBeTruthy();
    const second = await browser.get(next!);
    expect(rows(second.text)).toBe(5);
    expect(second.text).not.toContain('rel="next"');
  });

  it('finds a server by part of its name with the search box', async () => {
    const { text } = await browser.get('/admin/smtp-servers?search=needle');
    expect(text).toContain('name="search"');
    expect(rows(text)).toBe(1);
    expect(text).toContain('Needle desk');
    const none = await browser.get('/admin/smtp-servers?search=nothing-like-this');
    expect(rows(none.text)).toBe(0);
    expect(none.text).toContain('No server matches');
  });

  it('has the sending rate on the form, in English and Japanese, filled from the server', async () => {
    const id = (
      await app.services.mail.servers.create(
        { name: 'Rated', fromAddress: 'r@example.com', host: '127.0.0.1', port: 2525, rateLimitPerMinute: 12 },
        { actor: { type: 'system', id: 'test' } },
      )
    ).id;
    const { text } = await browser.get(`/admin/smtp-servers/${id}`);
    expect(text).toMatch(/name="rateLimitPerMinute"[^>]*value="12"/);
    expect(text).toContain('Sending rate (messages per minute)');
    const ja = await browser.get(`/admin/smtp-servers/${id}`, { headers: { 'accept-language': 'ja' } });
    expect(ja.text).toContain('送信レート');
  });
});
