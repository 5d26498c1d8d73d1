import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { composeMessage } from '../../src/mail/compose.js';
import { MailTransportFailure } from '../../src/mail/transport-failure.js';
import { waitUntil } from '../fakes/api-setup.js';
import { startTestApp, type TestApp } from '../fakes/app.js';
import { startGraphFake } from '../fakes/graph-api.js';
import type { MailApiFake } from '../fakes/mail-api.js';
import { authorizeThroughServices, providerEnv, TEST_ACTOR } from '../fakes/oauth-setup.js';
import { startFakeProvider, type FakeProvider } from '../fakes/oidc-provider.js';
import { redisUrlForTests } from '../fakes/redis.js';

/**
 * Two instances on one Redis: a Graph 429 answered to one of them slows that mailbox on the other too (the
 * announcement goes over the store's pub/sub), so the other does not call Graph for it before the given time.
 */

describe.skipIf(!redisUrlForTests())('Graph slow-down across instances', () => {
  let provider: FakeProvider;
  let graph: MailApiFake;
  let a: TestApp;
  let b: TestApp;
  let serverId: string;

  beforeAll(async () => {
    provider = await startFakeProvider({ kind: 'microsoft', accessTokenTtlSec: 300 });
    graph = await startGraphFake(provider);
    a = await startTestApp({
      store: 'redis',
      workers: true,
      env: { ...providerEnv(provider), MAILGATE_GRAPH_URL: graph.url, MAILGATE_QUEUE_RETRY_BASE_MS: '100' },
    });
    b = await startTestApp({ shareWith: a, workers: false });
    await b.services.start();
    const clientId = 'mailgate-instances';
    await provider.registerClient({
      clientId,
      clientSecret: 'instances-secret-0123456789',
      redirectUris: [`${a.config.MAILGATE_BASE_URL}/oauth/callback`],
    });
    const integration = await a.services.oauthIntegrations.create(
      {
        name: 'm',
        provider: 'microsoft',
        clientId,
        clientSecret: 'instances-secret-0123456789',
        tenant: provider.tenant,
      },
      TEST_ACTOR,
    );
    serverId = (
      await a.services.mail.servers.create(
        {
          name: 'graph',
          fromAddress: 'alice@example.test',
          protocol: 'graph',
          authMethod: 'oauth2',
          oauthIntegrationId: integration.id,
          username: 'alice@example.test',
        },
        { actor: TEST_ACTOR },
      )
    ).id;
    await authorizeThroughServices(a.services, serverId);
  });
  afterAll(async () => {
    await b?.close();
    await a?.close();
    await graph?.close();
    await provider?.close();
  });

  it('the other instance does not call Graph for a mailbox slowed on the first one', async () => {
    graph.inject({ status: 429, retryAfterSec: 120, code: 'ApplicationThrottled' });
    const { id } = await a.services.mail.queue.enqueue({
      serverId,
      to: ['carol@example.test'],
      subject: 's',
      text: 't',
    });
    await waitUntil('deferred', async () => (await a.services.mail.queue.get(id)).status === 'deferred');
    const requests = graph.requests.length;
    const server = (await b.services.mail.servers.resolve(serverId))!;
    const message = composeMessage({ to: ['carol@example.test'], subject: 'from b', text: 'b' }, server, '{name}');
    let failure: unknown;
    await waitUntil('slowed on b', async () => {
      failure = await b.services.mail.transport.send(server, message).then(
        () => null,
        (err: unknown) => err,
      );
      return failure instanceof MailTransportFailure && failure.providerCode === 'mailbox_slowed';
    });
    expect(graph.requests.length).toBe(requests);
    expect((failure as MailTransportFailure).retryAt).toBeGreaterThan(Date.now() + 100_000);
  });
});
