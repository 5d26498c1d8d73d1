import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Services } from '../../src/services.js';
import { createApiServer, startApiInstance, waitUntil, type ApiInstance } from '../fakes/api-setup.js';
import { startGraphFake } from '../fakes/graph-api.js';
import type { MailApiFake } from '../fakes/mail-api.js';
import { startOAuthSmtp, type OAuthSmtp } from '../fakes/oauth-flow.js';
import { authorizeThroughServices, providerEnv, TEST_ACTOR } from '../fakes/oauth-setup.js';
import { startFakeProvider, type FakeProvider } from '../fakes/oidc-provider.js';
import { freePort } from '../fakes/net.js';

/**
 * An integration's own Graph base URL (sovereign clouds) and who trusts which URL: MAILGATE_GRAPH_URL is the
 * operator's and reached as it is; a base URL an admin entered on an integration goes through the egress
 * policy. The egress resolver of one instance answers `localhost` with a metadata address (a rebinding name
 * server): the same `http://localhost:<port>` is reached as the operator's URL and refused as an admin's.
 * Also: Graph and Gmail API servers need an integration of the matching provider.
 */

async function integrationWith(services: Services, provider: FakeProvider, graphBaseUrl: string, name: string) {
  const created = await services.oauthIntegrations.create(
    {
      name,
      provider: 'microsoft',
      tenant: provider.tenant,
      clientId: `cloud-${name}`,
      clientSecret: 'secret-0123456789abcdef',
      graphBaseUrl,
    },
    TEST_ACTOR,
  );
  return created.id;
}

describe('per-integration Graph base URL', () => {
  let provider: FakeProvider;
  let google: FakeProvider;
  let globalGraph: MailApiFake;
  let cloudGraph: MailApiFake;
  let smtp: OAuthSmtp;
  let dev: ApiInstance;
  let rebound: ApiInstance;

  beforeAll(async () => {
    // The other cloud's Graph is its own resource: the provider grants its scopes, and the fake accepts only
    // tokens that name it (as graph.microsoft.us would refuse a token for graph.microsoft.com).
    const cloudPort = await freePort();
    const cloudResource = `http://127.0.0.1:${cloudPort}`;
    provider = await startFakeProvider({
      kind: 'microsoft',
      accessTokenTtlSec: 300,
      extraScopes: [`${cloudResource}/Mail.Send`, `${cloudResource}/.default`],
    });
    google = await startFakeProvider({ kind: 'google', accessTokenTtlSec: 300 });
    globalGraph = await startGraphFake(provider);
    cloudGraph = await startGraphFake(provider, { port: cloudPort, resource: cloudResource });
    smtp = await startOAuthSmtp(provider);
    const env = {
      ...providerEnv(provider),
      MAILGATE_GOOGLE_ISSUER: google.issuer,
      MAILGATE_GRAPH_URL: globalGraph.url,
      MAILGATE_QUEUE_MAX_ATTEMPTS: '2',
    };
    dev = await startApiInstance(env);
    const localhostUrl = globalGraph.url.replace('127.0.0.1', 'localhost');
    rebound = await startApiInstance({ ...env, MAILGATE_GRAPH_URL: localhostUrl }, undefined, {
      egressResolve: (hostname, callback) =>
        hostname === 'localhost'
          ? callback(null, [{ address: '169.254.169.254', family: 4 }])
          : callback(null, [{ address: hostname, family: hostname.includes(':') ? 6 : 4 }]),
    });
  });
  afterAll(async () => {
    await dev?.close();
    await rebound?.close();
    await smtp?.close();
    await globalGraph?.close();
    await cloudGraph?.close();
    await provider?.close();
    await google?.close();
  });

  /** A delegated Graph server on an integration with `graphBaseUrl` (or none), authorized, one message queued. */
  async function sendThrough(instance: ApiInstance, graphBaseUrl: string | null, subject: string) {
    const services = instance.services;
    const clientId = `cloud-${randomBytes(4).toString('hex')}`;
    const clientSecret = `secret-${randomBytes(16).toString('hex')}`;
    await provider.registerClient({
      clientId,
      clientSecret,
      redirectUris: [`${services.config.MAILGATE_BASE_URL}/oauth/callback`],
    });
    const integration = await services.oauthIntegrations.create(
      {
        name: subject,
        provider: 'microsoft',
        tenant: provider.tenant,
        clientId,
        clientSecret,
        ...(graphBaseUrl ? { graphBaseUrl } : {}),
      },
      TEST_ACTOR,
    );
    const serverId = await createApiServer(services, {
      protocol: 'graph',
      integrationId: integration.id,
      mailbox: 'alice@example.test',
    });
    await authorizeThroughServices(services, serverId, 'alice@example.test');
    const { id } = await services.mail.queue.enqueue({ serverId, to: ['bob@example.test'], subject, text: subject });
    return { id, serverId, services };
  }

  const arrived = (fake: MailApiFake, subject: string) =>
    fake.messages.filter((m) => m.mime.includes(`Subject: ${subject}`)).length;

  it('a server on an integration with graphBaseUrl posts there, not to MAILGATE_GRAPH_URL', async () => {
    const { id, services } = await sendThrough(dev, cloudGraph.url, 'to the sovereign cloud');
    await waitUntil('sent', async () => (await services.mail.queue.get(id)).status === 'sent');
    expect(arrived(cloudGraph, 'to the sovereign cloud')).toBe(1);
    expect(arrived(globalGraph, 'to the sovereign cloud')).toBe(0);
  });

  it('without graphBaseUrl the operator-set MAILGATE_GRAPH_URL is used as it is (no egress check)', async () => {
    const { id, services } = await sendThrough(rebound, null, 'to the operator url');
    await waitUntil('sent', async () => (await services.mail.queue.get(id)).status === 'sent');
    expect(arrived(globalGraph, 'to the operator url')).toBe(1);
  });

  it('the same URL entered by an admin as graphBaseUrl goes through the egress policy and is refused', async () => {
    const requests = globalGraph.requests.length;
    const url = globalGraph.url.replace('127.0.0.1', 'localhost');
    const { id, services } = await sendThrough(rebound, url, 'refused rebinding');
    await waitUntil('not sent', async () => (await services.mail.queue.get(id)).lastError !== null);
    const view = await services.mail.queue.get(id);
    expect(view.status).not.toBe('sent');
    expect(view.lastError?.code).toBe('egress_denied');
    expect(globalGraph.requests.length).toBe(requests);
  });

  it('a metadata address as graphBaseUrl is never reached, not even outside production', async () => {
    const { id, services } = await sendThrough(dev, 'http://169.254.169.254', 'refused metadata');
    await waitUntil('not sent', async () => (await services.mail.queue.get(id)).lastError !== null);
    const view = await services.mail.queue.get(id);
    expect(view.status).not.toBe('sent');
    expect(view.lastError?.code).toBe('egress_denied');
    expect(view.lastError?.message).toContain('169.254.169.254');
  });

  it('a graph server needs a Microsoft integration and a gmail_api server a Google one, naming the field', async () => {
    const services = dev.services;
    const microsoftId = await integrationWith(services, provider, cloudGraph.url, 'ms');
    const googleIntegration = await services.oauthIntegrations.create(
      { name: 'google', provider: 'google', clientId: 'g-client', clientSecret: 'g-secret-0123456789' },
      TEST_ACTOR,
    );
    const refused = (protocol: 'graph' | 'gmail_api', integrationId: string) =>
      createApiServer(services, { protocol, integrationId, mailbox: 'alice@example.test' });
    await expect(refused('graph', googleIntegration.id)).rejects.toMatchObject({
      code: 'validation_failed',
      details: [{ field: 'oauthIntegrationId', message: expect.stringContaining('Microsoft') as unknown }],
    });
    await expect(refused('gmail_api', microsoftId)).rejects.toMatchObject({
      code: 'validation_failed',
      details: [{ field: 'oauthIntegrationId', message: expect.stringContaining('Google') as unknown }],
    });
    // Switching an existing Google-backed SMTP server to Graph is refused the same way.
    const smtpServer = await services.mail.servers.create(
      {
        name: 'google smtp',
        fromAddress: 'alice@example.test',
        host: '127.0.0.1',
        port: smtp.port,
        protocol: 'smtp',
        authMethod: 'oauth2',
        oauthIntegrationId: googleIntegration.id,
      },
      { actor: TEST_ACTOR },
    );
    await expect(
      services.mail.servers.update(smtpServer.id, { protocol: 'graph' }, { actor: TEST_ACTOR }),
    ).rejects.toMatchObject({ details: [{ field: 'oauthIntegrationId' }] });
    expect((await services.mail.servers.get(smtpServer.id)).protocol).toBe('smtp');
    // The matching providers are accepted.
    await expect(refused('graph', microsoftId)).resolves.toMatch(/^srv_/);
  });
});
