import type { AddressInfo } from 'node:net';
import { SMTPServer } from 'smtp-server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitUntil } from '../fakes/api-setup.js';
import { startTestApp, type TestApp } from '../fakes/app.js';
import { startGraphFake } from '../fakes/graph-api.js';
import type { MailApiFake } from '../fakes/mail-api.js';
import { consentAtProvider } from '../fakes/oauth-flow.js';
import { authorizeThroughServices, createOAuthServer, providerEnv } from '../fakes/oauth-setup.js';
import { startFakeProvider, type FakeProvider } from '../fakes/oidc-provider.js';

/**
 * The way out of `535 5.7.139`: an SMTP server that refuses every XOAUTH2 login the way Exchange Online does when
 * SMTP AUTH is off for the tenant; the server page offers Switch to Microsoft Graph; through the HTTP routes
 * (switch, Authorize, the provider's consent, the callback) the same server, with its held message, delivers
 * through the Graph fake.
 */

const decode = (s: string) =>
  s
    .replace(/&quot;/g, '"')
    .replace(/&#39;/g, "'")
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&amp;/g, '&');

describe('535 5.7.139 → Switch to Microsoft Graph', () => {
  let provider: FakeProvider;
  let graph: MailApiFake;
  let blocked: SMTPServer;
  let app: TestApp;
  let serverId: string;

  beforeAll(async () => {
    provider = await startFakeProvider({ kind: 'microsoft', accessTokenTtlSec: 300 });
    graph = await startGraphFake(provider);
    blocked = new SMTPServer({
      logger: false,
      disableReverseLookup: true,
      authMethods: ['XOAUTH2'],
      allowInsecureAuth: true,
      disabledCommands: ['STARTTLS'],
      onAuth(_auth, _session, cb) {
        const err = new Error(
          '5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant. Visit https://aka.ms/smtp_auth_disabled for more information.',
        ) as Error & { responseCode: number };
        err.responseCode = 535;
        cb(err);
      },
    });
    await new Promise<void>((resolve) => blocked.listen(0, '127.0.0.1', resolve));
    app = await startTestApp({
      workers: true,
      env: { ...providerEnv(provider), MAILGATE_GRAPH_URL: graph.url, MAILGATE_QUEUE_RETRY_BASE_MS: '100' },
    });
    const port = (blocked.server.address() as AddressInfo).port;
    serverId = (await createOAuthServer(app.services, provider, port)).serverId;
    await authorizeThroughServices(app.services, serverId);
  });
  afterAll(async () => {
    await app?.close();
    await new Promise<void>((resolve) => blocked.close(() => resolve()));
    await graph?.close();
    await provider?.close();
  });

  it('pauses the server with the diagnosis, offers the switch, and delivers through Graph after authorization', async () => {
    const { id } = await app.services.mail.queue.enqueue({
      serverId,
      to: ['carol@example.test'],
      subject: 'held until Graph',
      text: 'hello',
    });
    await waitUntil('held', async () => (await app.services.mail.queue.get(id)).status === 'held');
    const pause = await app.services.mail.servers.pauseOf(serverId);
    expect(pause?.code).toBe('smtp_auth_disabled');
    expect(pause?.reason).toContain('Switch to Microsoft Graph');

    const admin = await app.browserSession('sysadmin');
    const page = await admin.get(`/admin/smtp-servers/${serverId}`);
    expect(page.text).toContain('id="switch-to-graph-button"');
    expect(page.text).toContain('Switch to Microsoft Graph');
    const ja = await admin.get(`/admin/smtp-servers/${serverId}`, { headers: { 'accept-language': 'ja' } });
    expect(ja.text).toContain('Microsoft Graph に切り替え');

    const switched = await admin.postForm(`/admin/smtp-servers/${serverId}/switch-to-graph`);
    expect(switched.res.status).toBe(307);
    const next = switched.res.headers.get('location')!;
    expect(next).toBe(`/admin/smtp-servers/${serverId}/authorize`);
    const server = await app.services.mail.servers.get(serverId);
    expect(server.protocol).toBe('graph');
    expect(server.fromAddress).toBe('alice@example.test');
    expect((await app.services.mail.servers.pauseOf(serverId))?.code).toBe('awaiting_graph_authorization');
    // Released by the settings change, held again by the pause: it waits for the authorization.
    await waitUntil('held again', async () => (await app.services.mail.queue.get(id)).status === 'held');

    // The 307 repeats the post to Authorize (the browser would do it with the same body).
    const redirect = await admin.postForm(next);
    expect(redirect.res.status).toBe(200);
    const action = decode(/<form id="oauth-redirect" method="get" action="([^"]+)"/.exec(redirect.text)![1]!);
    const params = new URLSearchParams();
    for (const m of redirect.text.matchAll(/<input type="hidden" name="([^"]+)" value="([^"]*)">/g))
      params.append(decode(m[1]!), decode(m[2]!));
    expect(params.get('scope')).toContain('https://graph.microsoft.com/Mail.Send');
    const callback = await consentAtProvider(`${action}?${params.toString()}`, 'alice@example.test');
    const done = await admin.get(`${callback.pathname}${callback.search}`);
    expect(done.res.status).toBe(303);

    await waitUntil('sent through Graph', async () => (await app.services.mail.queue.get(id)).status === 'sent');
    expect(graph.messages).toHaveLength(1);
    expect(graph.messages[0]!.mime).toContain('Subject: held until Graph');
    expect((await app.services.mail.servers.get(serverId)).id).toBe(serverId);
    expect(await app.services.mail.servers.pauseOf(serverId)).toBeNull();
  });

  it('the JSON API creates Graph and Gmail API servers without a host and refuses one without OAuth 2.0', async () => {
    const key = await app.apiKey(['admin']);
    const post = (body: unknown) =>
      fetch(`${app.url}/api/v1/smtp-servers`, {
        method: 'POST',
        headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
    const integrationId = (await app.services.mail.servers.get(serverId)).oauthIntegrationId;
    const created = await post({
      name: 'graph by api',
      protocol: 'graph',
      authMethod: 'oauth2',
      oauthIntegrationId: integrationId,
      username: 'alice@example.test',
      fromAddress: 'shared@example.test',
      sendAs: ['other@example.test'],
    });
    expect(created.status).toBe(201);
    const body = (await created.json()) as { protocol: string; host: string; sendAs: string[] };
    expect(body).toMatchObject({ protocol: 'graph', host: '', sendAs: ['other@example.test'] });
    const refused = await post({
      name: 'gmail basic',
      protocol: 'gmail_api',
      authMethod: 'basic',
      username: 'a',
      password: 'b',
      fromAddress: 'a@example.test',
    });
    expect(refused.status).toBe(400);
    const error = ((await refused.json()) as { error: { details: { field: string }[] } }).error;
    expect(error.details.map((d) => d.field)).toContain('authMethod');
  });
});
