import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTranslations } from '../../src/i18n/i18n.js';
import { catalogs } from '../../src/i18n/messages/index.js';
import { startTestApp, type HttpSession, type TestApp } from '../fakes/app.js';
import { messageInput } from '../../src/mail/compose.js';
import { eventually, TEST_ACTOR } from '../fakes/mail-services.js';
import { freePort } from '../fakes/net.js';

/**
 * Hints stored in English are shown in the reader's language at display time: a server paused by a Graph /
 * Gmail API diagnosis (server page and mail queue), and a refused OAuth callback. English keeps the stored text.
 */

const t = createTranslations(catalogs);
const ja = { 'accept-language': 'ja,en;q=0.5' };
const en = { 'accept-language': 'en' };
const escape = (s: string) => s.replaceAll('&', '&amp;').replaceAll('"', '&quot;').replaceAll("'", '&#39;');

describe('hints in the reader language', () => {
  let app: TestApp;
  let admin: HttpSession;
  let serverId: string;
  const englishReason = 'Microsoft Graph asked to slow down for this mailbox (429 ApplicationThrottled).';

  beforeAll(async () => {
    app = await startTestApp({ workers: true });
    admin = await app.browserSession('sysadmin');
    serverId = (
      await app.services.mail.servers.create(
        { name: 'Graph mailbox', fromAddress: 'notify@example.com', host: '127.0.0.1', port: 2525, tls: false },
        { actor: TEST_ACTOR },
      )
    ).id;
    await app.services.mail.servers.pause(serverId, { reason: englishReason, code: 'api_throttled' });
  });
  afterAll(async () => {
    await app?.close();
  });

  it('shows a pause reason by its code in Japanese, and as stored in English', async () => {
    const japanese = escape(t.ja('diagnosis.api_throttled'));
    for (const path of [`/admin/smtp-servers/${serverId}`, '/admin/mail-queue']) {
      const { text } = await admin.get(path, { headers: ja });
      expect(text, path).toContain(japanese);
      expect(text, path).not.toContain(englishReason);
      const english = await admin.get(path, { headers: en });
      expect(english.text, path).toContain(englishReason);
    }
  });

  it('explains a refused OAuth callback in Japanese', async () => {
    const { res, text } = await admin.get('/oauth/callback?code=abc', { headers: ja });
    expect(res.status).toBe(400);
    expect(text).toContain('data-reason="missing_state"');
    expect(text).toContain(escape(t.ja('oauthFailure.missing_state')));
    const english = await admin.get('/oauth/callback?code=abc', { headers: en });
    expect(english.text).toContain('The provider sent no state');
  });

  it('gives the API hint of a message in the language Accept-Language asks for; the code stays English', async () => {
    const refusing = await app.services.mail.servers.create(
      { name: 'Nobody home', fromAddress: 'notify@example.com', host: '127.0.0.1', port: await freePort(), tls: false },
      { actor: TEST_ACTOR },
    );
    const { id } = await app.services.mail.queue.enqueue({
      ...messageInput.parse({ to: 'ops@example.net', subject: 'hello', text: 'hello' }),
      serverId: refusing.id,
    });
    await eventually(
      () => app.services.mail.queue.get(id),
      (m) => m.lastError !== null,
    );
    const key = await app.apiKey(['send', 'admin']);
    const get = (headers: Record<string, string>) =>
      fetch(`${app.url}/api/v1/messages/${id}`, { headers: { authorization: `Bearer ${key}`, ...headers } }).then(
        (r) => r.json() as Promise<{ lastError: { code: string; hint: string } }>,
      );
    const inJapanese = await get(ja);
    expect(inJapanese.lastError?.code, JSON.stringify(inJapanese)).toBe('connection_refused');
    expect(inJapanese.lastError.hint).toBe(
      t.ja('diagnosis.connection_refused', { where: t.ja('diagnosisWhere.unknown') }),
    );
    expect((await get(en)).lastError.hint).toMatch(/^[\x20-\x7e]+$/);
  });

  it('shows an integration warning in Japanese by its kind, and as written in English', async () => {
    const inFiveDays = new Date(Date.now() + 5 * 86_400_000).toISOString().slice(0, 10);
    await app.services.oauthIntegrations.create(
      {
        name: 'expiring app',
        provider: 'microsoft',
        clientId: 'expiring-client',
        clientSecret: 'expiring-secret-value',
        tenant: 'contoso.onmicrosoft.com',
        secretExpiresAt: inFiveDays,
      },
      TEST_ACTOR,
    );
    const japanese = await admin.get('/admin/oauth-integrations', { headers: ja });
    expect(japanese.text).toContain(
      escape(`"expiring app" のクライアントシークレットは ${inFiveDays} に期限切れになります`),
    );
    const english = await admin.get('/admin/oauth-integrations', { headers: en });
    expect(english.text).toContain(`The client secret of &quot;expiring app&quot; expires on ${inFiveDays}`);
  });
});
