import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GRANTS, type GrantRecord } from '../../src/tokens/grants.js';
import { RECONNECT_LINKS } from '../../src/tokens/reconnect-links.js';
import { startTestApp, type HttpSession, type TestApp } from '../fakes/app.js';
import { consentAtProvider } from '../fakes/oauth-flow.js';
import { createOAuthServer, providerEnv, TEST_ACTOR } from '../fakes/oauth-setup.js';
import { startFakeProvider, type FakeProvider } from '../fakes/oidc-provider.js';
import { redisUrlForTests } from '../fakes/redis.js';

/**
 * Reconnect links over HTTP, against a real OpenID provider: the owner of a mailbox, with no mailgate session,
 * opens the link, presses Authorize, consents and the grant is stored; every bad use (reused, expired,
 * revoked, tampered, another mailbox, another browser) is refused with a clear page, stores nothing and is
 * audited. Time is moved with the app's injected clock.
 */

let clockOffsetMs = 0;
const DAY = 24 * 3600_000;

const unescape = (v: string) =>
  v
    .replace(/&amp;/g, '&')
    .replace(/&#39;/g, "'")
    .replace(/&quot;/g, '"');

/** The provider URL the link's redirect page submits to. */
function providerUrlOf(html: string): string {
  const action = /<form id="oauth-redirect" method="get" action="([^"]+)"/.exec(html)?.[1];
  if (!action) throw new Error(`no redirect form in: ${html.slice(0, 500)}`);
  const url = new URL(unescape(action));
  for (const m of html.matchAll(/<input type="hidden" name="([^"]+)" value="([^"]*)">/g))
    if (m[1] !== '_csrf') url.searchParams.set(m[1]!, unescape(m[2]!));
  return url.href;
}

const stores = redisUrlForTests() ? (['file', 'redis'] as const) : (['file'] as const);

describe.each(stores)('reconnect links (Microsoft flavour, %s store)', (store) => {
  let provider: FakeProvider;
  let app: TestApp;
  let key: string;
  let serverId: string;

  beforeAll(async () => {
    provider = await startFakeProvider({ kind: 'microsoft', accessTokenTtlSec: 60 });
    app = await startTestApp({
      store,
      // Behind one proxy: X-Forwarded-For names the client, so tests can come from several addresses.
      env: { ...providerEnv(provider), MAILGATE_TRUST_PROXY: '1' },
      clock: () => Date.now() + clockOffsetMs,
    });
    key = await app.apiKey(['admin']);
    const created = await createOAuthServer(app.services, provider, 2525);
    serverId = created.serverId;
    await app.services.mail.servers.update(serverId, { username: 'alice@example.test' }, { actor: TEST_ACTOR });
  });
  afterAll(async () => {
    await app?.close();
    await provider?.close();
  });

  const api = (path: string, init: RequestInit = {}) =>
    fetch(`${app.url}${path}`, {
      ...init,
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', ...init.headers },
    });

  async function createLink(): Promise<{ id: string; url: string; token: string; expiresAt: string }> {
    const res = await api(`/api/v1/smtp-servers/${serverId}/reconnect-links`, { method: 'POST', body: '{}' });
    expect(res.status).toBe(201);
    const body = (await res.json()) as { id: string; url: string; expiresAt: string };
    return { ...body, token: body.url.split('/connect/')[1]! };
  }

  /** Opens the link as the owner (a fresh cookie jar), presses Authorize, consents as `login`; returns the callback. */
  async function ownerAuthorizes(token: string, login: string, owner = app.anonymousSession()) {
    const page = await owner.get(`/connect/${token}`);
    expect(page.res.status).toBe(200);
    const pressed = await owner.postForm(`/connect/${token}`);
    expect(pressed.res.status).toBe(200);
    const callback = await consentAtProvider(providerUrlOf(pressed.text), login);
    return { owner, callbackPath: `${callback.pathname}${callback.search}` };
  }

  const grant = () => app.store.get<GrantRecord>(GRANTS, serverId);
  const auditOf = async (action: string) =>
    (await app.services.audit.list({ limit: 200 })).entries.filter((e) => e.action === action);

  it('the owner authorizes without a session; the page names the mailbox; the link is then useless', async () => {
    const link = await createLink();
    expect(Date.parse(link.expiresAt) - (Date.now() + clockOffsetMs)).toBeGreaterThan(7 * DAY - 60_000);
    expect(link.url).toBe(`${app.config.MAILGATE_BASE_URL}/connect/${link.token}`);
    // Only a hash of the token is stored.
    const stored = JSON.stringify(await app.store.list(RECONNECT_LINKS));
    expect(stored).not.toContain(link.token.split('.')[1]);

    const owner = app.anonymousSession();
    const page = await owner.get(`/connect/${link.token}`);
    expect(page.text).toContain('alice@example.test');
    expect(page.text).toContain('oauth ');
    expect(page.res.headers.get('referrer-policy')).toBe('no-referrer');
    const { callbackPath } = await ownerAuthorizes(link.token, 'alice@example.test', owner);
    expect([...owner.cookies.keys()].some((k) => k.includes('sid'))).toBe(false);
    const done = await owner.get(callbackPath);
    expect(done.res.status).toBe(200);
    expect(done.text).toContain('id="connect-done"');
    expect(done.text).toContain('alice@example.test');
    const g = await grant();
    expect(g?.value.status).toBe('active');
    expect(g?.value.mailbox).toBe('alice@example.test');
    expect(g?.value.authorizedBy).toBe(`reconnect_link:${link.id}`);
    expect((await auditOf('reconnect_link.create')).some((e) => e.detail?.linkId === link.id)).toBe(true);
    expect(
      (await auditOf('reconnect_link.use')).some((e) => e.outcome === 'success' && e.detail?.linkId === link.id),
    ).toBe(true);

    // Reused: the link, and the callback, are refused.
    const again = await app.anonymousSession().get(`/connect/${link.token}`);
    expect(again.res.status).toBe(410);
    expect(again.text).toContain('data-reason="used"');
    // A replayed callback finds no reconnect transaction: it is the admin callback's, which wants a login.
    const replay = await owner.get(callbackPath);
    expect(replay.res.status).toBe(303);
    expect(replay.res.headers.get('location')).toMatch(/^\/login/);
    const listed = (await (await api(`/api/v1/smtp-servers/${serverId}/reconnect-links`)).json()) as {
      items: { id: string; status: string }[];
    };
    expect(listed.items.find((l) => l.id === link.id)?.status).toBe('used');
  });

  it('only OAuth servers get links, only with an admin key', async () => {
    const plain = await app.services.mail.servers.create(
      { name: 'plain', fromAddress: 'p@example.test', host: '127.0.0.1', port: 2527, protocol: 'smtp' },
      { actor: TEST_ACTOR },
    );
    const res = await api(`/api/v1/smtp-servers/${plain.id}/reconnect-links`, { method: 'POST', body: '{}' });
    expect(res.status).toBe(400);
    const sendKey = await app.apiKey(['send']);
    const forbidden = await fetch(`${app.url}/api/v1/smtp-servers/${serverId}/reconnect-links`, {
      method: 'POST',
      headers: { authorization: `Bearer ${sendKey}`, 'content-type': 'application/json' },
      body: '{}',
    });
    expect(forbidden.status).toBe(403);
    await app.services.mail.servers.remove(plain.id, { actor: TEST_ACTOR });
  });

  it('tampered links are refused before any lookup, and audited', async () => {
    const link = await createLink();
    const [id, secret, mac] = link.token.split('.') as [string, string, string];
    const flip = (s: string) => (s[0] === 'A' ? 'B' : 'A') + s.slice(1);
    for (const bad of [`${id}.${secret}.${flip(mac)}`, `${id}.${flip(secret)}.${mac}`, `${id}.${secret}`, 'x']) {
      const res = await app.anonymousSession().get(`/connect/${bad}`);
      expect(res.res.status).toBe(404);
      expect(res.text).toContain('data-reason="tampered"');
    }
    expect((await auditOf('reconnect_link.use')).filter((e) => e.detail?.error === 'tampered').length).toBe(1);
  });

  it('tampered and unknown hits are audited once per address per minute; every hit is still refused', async () => {
    const link = await createLink();
    const [id, secret] = link.token.split('.') as [string, string, string];
    const refusals = async (ip: string) =>
      (await auditOf('reconnect_link.use')).filter(
        (e) => e.ip === ip && (e.detail?.error === 'tampered' || e.detail?.error === 'unknown'),
      ).length;
    // A new minute on the injected clock, so entries of the test before do not count here; at its start, so the
    // real time the hits take cannot carry them into the next one.
    clockOffsetMs += 120_000 - ((Date.now() + clockOffsetMs) % 60_000);
    const hit = async (token: string, ip: string, reason: string) => {
      const res = await app.anonymousSession().get(`/connect/${token}`, { headers: { 'x-forwarded-for': ip } });
      expect(res.res.status).toBe(404);
      expect(res.text).toContain(`data-reason="${reason}"`);
    };
    for (let i = 0; i < 20; i++) await hit(`${id}.${secret}.${'A'.repeat(43)}`, '198.51.100.7', 'tampered');
    expect(await refusals('198.51.100.7')).toBe(1);
    // Another address gets its own entry; an unknown (well-signed, deleted) link counts with the tampered ones.
    await hit('x', '198.51.100.8', 'tampered');
    expect(await refusals('198.51.100.8')).toBe(1);
    await app.store.delete(RECONNECT_LINKS, link.id);
    await hit(link.token, '198.51.100.7', 'unknown');
    expect(await refusals('198.51.100.7')).toBe(1);
    // The next minute: one more entry for the same address.
    clockOffsetMs += 60_000;
    await hit(link.token, '198.51.100.7', 'unknown');
    await hit(link.token, '198.51.100.7', 'unknown');
    expect(await refusals('198.51.100.7')).toBe(2);
  });

  it('the API lists links a page at a time ({items, next}), newest first', async () => {
    for (let i = 0; i < 3; i++) await createLink();
    const listPath = `/api/v1/smtp-servers/${serverId}/reconnect-links`;
    const whole = (await (await api(listPath)).json()) as { items: { id: string }[]; next?: string };
    expect(whole.items.length).toBeGreaterThanOrEqual(3);
    expect(whole.next).toBeUndefined();
    const seen: string[] = [];
    let cursor: string | undefined;
    let pages = 0;
    do {
      const res = await api(`${listPath}?limit=2${cursor ? `&cursor=${cursor}` : ''}`);
      expect(res.status).toBe(200);
      const page = (await res.json()) as { items: { id: string }[]; next?: string };
      expect(page.items.length).toBeLessThanOrEqual(2);
      seen.push(...page.items.map((l) => l.id));
      cursor = page.next;
      pages++;
    } while (cursor && pages < 50);
    expect(seen).toEqual(whole.items.map((l) => l.id));
    expect(pages).toBe(Math.ceil(whole.items.length / 2));
    for (const bad of ['?limit=0', '?limit=501', '?cursor=%2F%2F', '?cursor=bm9wZQ'])
      expect((await api(`${listPath}${bad}`)).status, bad).toBe(400);
    expect((await api('/api/v1/smtp-servers/srv_nope/reconnect-links')).status).toBe(404);
  });

  it('an expired link is refused (7 days on the injected clock), nothing stored', async () => {
    await app.store.delete(GRANTS, serverId);
    const link = await createLink();
    clockOffsetMs += 7 * DAY + 1000;
    try {
      const res = await app.anonymousSession().get(`/connect/${link.token}`);
      expect(res.res.status).toBe(410);
      expect(res.text).toContain('data-reason="expired"');
      const owner = app.anonymousSession();
      await owner.get('/login');
      const pressed = await owner.postForm(`/connect/${link.token}`);
      expect(pressed.res.status).toBe(410);
    } finally {
      clockOffsetMs -= 7 * DAY + 1000;
    }
    expect(await grant()).toBeNull();
  });

  it('a link revoked (by API, or on the page after confirmation) is refused, even mid-authorization', async () => {
    const link = await createLink();
    const { owner, callbackPath } = await ownerAuthorizes(link.token, 'alice@example.test');
    const revoked = await api(`/api/v1/smtp-servers/${serverId}/reconnect-links/${link.id}`, { method: 'DELETE' });
    expect(revoked.status).toBe(200);
    expect(((await revoked.json()) as { status: string }).status).toBe('revoked');
    const done = await owner.get(callbackPath);
    expect(done.res.status).toBe(410);
    expect(done.text).toContain('data-reason="revoked"');
    expect(await grant()).toBeNull();
    expect((await app.anonymousSession().get(`/connect/${link.token}`)).res.status).toBe(410);
    expect((await auditOf('reconnect_link.revoke')).some((e) => e.detail?.linkId === link.id)).toBe(true);

    const admin: HttpSession = await app.browserSession('sysadmin');
    const second = await createLink();
    const serverPage = await admin.get(`/admin/smtp-servers/${serverId}`);
    expect(serverPage.text).toContain(`data-link="${second.id}"`);
    expect(serverPage.text).toContain('Create reconnect link');
    const path = `/admin/smtp-servers/${serverId}/reconnect-links/${second.id}/revoke`;
    const ask = await admin.postForm(path);
    expect(ask.res.status).toBe(200);
    expect(ask.text).toContain('name="confirmed" value="yes"');
    expect((await app.anonymousSession().get(`/connect/${second.token}`)).res.status).toBe(200);
    const confirmed = await admin.postForm(path, { confirmed: 'yes' });
    expect(confirmed.res.status).toBe(303);
    expect((await app.anonymousSession().get(`/connect/${second.token}`)).res.status).toBe(410);
  });

  it('another mailbox is refused, nothing stored, and the link can still be used by the right one', async () => {
    const link = await createLink();
    const wrong = await ownerAuthorizes(link.token, 'mallory@example.test');
    const refused = await wrong.owner.get(wrong.callbackPath);
    expect(refused.res.status).toBe(400);
    expect(refused.text).toContain('data-reason="wrong_mailbox"');
    expect(refused.text).toContain('alice@example.test');
    expect(await grant()).toBeNull();
    expect(
      (await auditOf('reconnect_link.use')).some(
        (e) => e.outcome === 'failure' && e.detail?.linkId === link.id && e.detail?.error === 'wrong_mailbox',
      ),
    ).toBe(true);
    const right = await ownerAuthorizes(link.token, 'alice@example.test');
    expect((await right.owner.get(right.callbackPath)).res.status).toBe(200);
    expect((await grant())?.value.mailbox).toBe('alice@example.test');
  });

  it('a callback in another browser (without the link page cookie) is refused', async () => {
    await app.store.delete(GRANTS, serverId);
    const link = await createLink();
    const { callbackPath } = await ownerAuthorizes(link.token, 'alice@example.test');
    const stranger = await app.anonymousSession().get(callbackPath);
    expect(stranger.res.status).toBe(403);
    expect(stranger.text).toContain('data-reason="binding"');
    expect(await grant()).toBeNull();
  });

  it('speaks Japanese to a Japanese browser', async () => {
    const link = await createLink();
    const page = await app.anonymousSession().get(`/connect/${link.token}`, { headers: { 'accept-language': 'ja' } });
    expect(page.text).toContain('<html lang="ja">');
    expect(page.text).toContain('メールボックスの再接続');
    expect(page.text).toContain('>承認</button>');
    const bad = await app.anonymousSession().get('/connect/x', { headers: { 'accept-language': 'ja' } });
    expect(bad.text).toContain('このリンクは無効です');
  });

  it('an authorization left more than 10 minutes is refused, then swept', async () => {
    await app.store.delete(GRANTS, serverId);
    const link = await createLink();
    const { owner, callbackPath } = await ownerAuthorizes(link.token, 'alice@example.test');
    clockOffsetMs += 11 * 60_000;
    try {
      const late = await owner.get(callbackPath);
      expect(late.res.status).toBe(400);
      expect(late.text).toContain('data-reason="transaction"');
      const again = await ownerAuthorizes(link.token, 'alice@example.test');
      clockOffsetMs += 11 * 60_000;
      expect(await app.services.reconnectLinks.sweepExpired()).toBeGreaterThanOrEqual(1);
      expect((await again.owner.get(again.callbackPath)).res.status).toBe(303);
    } finally {
      clockOffsetMs -= 22 * 60_000;
    }
    expect(await grant()).toBeNull();
  });

  it('the link can be emailed through another healthy server, never through the broken one', async () => {
    const other = await app.services.mail.servers.create(
      { name: 'relay', fromAddress: 'relay@example.test', host: '127.0.0.1', port: 2526, protocol: 'smtp' },
      { actor: TEST_ACTOR },
    );
    const admin = await app.browserSession('sysadmin');
    const page = await admin.get(`/admin/smtp-servers/${serverId}`);
    expect(page.text).toContain(`<option value="${other.id}">relay</option>`);
    expect(page.text).not.toContain(`<option value="${serverId}">`);
    const before = (await app.store.list(RECONNECT_LINKS)).length;
    const self = await api(`/api/v1/smtp-servers/${serverId}/reconnect-links`, {
      method: 'POST',
      body: JSON.stringify({ emailVia: serverId }),
    });
    expect(self.status).toBe(400);
    expect(((await self.json()) as { error: { details: { field: string }[] } }).error.details[0]?.field).toBe(
      'emailVia',
    );
    expect((await app.store.list(RECONNECT_LINKS)).length).toBe(before);
    const created = await admin.postForm(`/admin/smtp-servers/${serverId}/reconnect-links`, { emailVia: other.id });
    expect(created.res.status).toBe(200);
    const url = unescape(/<code id="reconnect-url">([^<]+)<\/code>/.exec(created.text)?.[1] ?? '');
    expect(url).toContain('/connect/rl_');
    expect(created.text).toContain('alice@example.test');
    const queued = (await app.services.mail.queue.overview(50)).queue.filter((m) => m.serverId === other.id);
    expect(queued).toHaveLength(1);
    expect(queued[0]?.recipients.map((r) => r.address)).toEqual(['alice@example.test']);
  });
});

describe('reconnect link tokens in logs', () => {
  it('a refused post on a link (no form token) logs no token', async () => {
    const lines: string[] = [];
    const { Writable } = await import('node:stream');
    const sink = new Writable({
      write(chunk: Buffer, _enc, cb) {
        lines.push(chunk.toString());
        cb();
      },
    });
    const provider = await startFakeProvider({ kind: 'google' });
    const app = await startTestApp({
      env: { ...providerEnv(provider), MAILGATE_LOG_LEVEL: 'debug' },
      logDestination: sink,
    });
    try {
      const { serverId } = await createOAuthServer(app.services, provider, 2525);
      const { token } = await app.services.reconnectLinks.create(serverId, TEST_ACTOR);
      const res = await app.anonymousSession().postForm(`/connect/${token}`, {}, { csrf: false });
      expect(res.res.status).toBe(403);
      expect(lines.join('')).toContain('/connect/(token)');
      expect(lines.join('')).not.toContain(token.split('.')[1]);
    } finally {
      await app.close();
      await provider.close();
    }
  });
});
