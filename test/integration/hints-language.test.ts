import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTranslations } from '../../src/i18n/i18n.js';
import { catalogs } from '../../src/i18n/messages/index.js';
import { startTestApp, type HttpSession, type TestApp } from '../fakes/app.js';
import { TEST_ACTOR } from '../fakes/mail-services.js';

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
    app = await startTestApp();
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
});
