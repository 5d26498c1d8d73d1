import { randomBytes } from 'node:crypto';
import type { Actor } from '../../src/admin/types.js';
import type { Services } from '../../src/services.js';
import { consentAtProvider } from './oauth-flow.js';
import type { FakeProvider } from './oidc-provider.js';

/** Environment that points mailgate's presets at a local provider. */
export function providerEnv(provider: FakeProvider): Record<string, string> {
  return provider.kind === 'google'
    ? { MAILGATE_GOOGLE_ISSUER: provider.issuer, MAILGATE_ALLOW_INSECURE_OAUTH: 'true' }
    : { MAILGATE_MICROSOFT_AUTHORITY: provider.authority, MAILGATE_ALLOW_INSECURE_OAUTH: 'true' };
}

export const TEST_ACTOR: Actor = { type: 'user', id: 'u_test', email: 'admin@example.test', role: 'sysadmin' };

/** Creates an integration (registered at the provider) and an OAuth SMTP server pointing at `smtpPort`. */
export async function createOAuthServer(
  services: Services,
  provider: FakeProvider,
  smtpPort: number,
  options: { clientSecret?: string } = {},
) {
  const clientId = `mailgate-${randomBytes(4).toString('hex')}`;
  const clientSecret = options.clientSecret ?? `secret-${randomBytes(16).toString('hex')}`;
  await provider.registerClient({
    clientId,
    clientSecret,
    redirectUris: [`${services.config.MAILGATE_BASE_URL}/oauth/callback`],
  });
  const integration = await services.oauthIntegrations.create(
    {
      name: `${provider.kind} test`,
      provider: provider.kind,
      clientId,
      clientSecret,
      ...(provider.kind === 'microsoft' ? { tenant: provider.tenant } : {}),
    },
    TEST_ACTOR,
  );
  const server = await services.mail.servers.create(
    {
      name: `oauth ${provider.kind}`,
      fromAddress: 'alice@example.test',
      host: '127.0.0.1',
      port: smtpPort,
      protocol: 'smtp',
      authMethod: 'oauth2',
      oauthIntegrationId: integration.id,
      timeoutMs: 5000,
    },
    { actor: TEST_ACTOR },
  );
  return { integrationId: integration.id, serverId: server.id, clientId, clientSecret };
}

/** Runs Authorize → provider consent → callback through the services (no HTTP), as `login`. */
export async function authorizeThroughServices(
  services: Services,
  serverId: string,
  login = 'alice@example.test',
): Promise<{ mailbox: string; code: string }> {
  const sessionId = `sess-${randomBytes(6).toString('hex')}`;
  const { url } = await services.authorize.begin({ serverId, sessionId, actor: TEST_ACTOR });
  const callback = await consentAtProvider(url, login);
  const done = await services.authorize.complete({ callbackUrl: callback, sessionId, actor: TEST_ACTOR });
  return { ...done, code: callback.searchParams.get('code') ?? '' };
}
