import type { Actor } from '../admin/types.js';
import { AppError } from '../errors.js';
import { OAuthProtocolError } from '../oauth/client.js';
import type { IntegrationService } from '../oauth/integrations.js';
import { providerOf } from '../oauth/providers/index.js';
import { scopesForServer, type ServerLookup } from './authorize.js';
import { storeGrant, type GrantStoreDeps } from './grant-store.js';

/**
 * Headless Authorize (RFC 8628 device authorization grant, Microsoft): for a machine without a browser the
 * admin reads a code, types it at the provider on any device, and the grant is stored exactly as the
 * browser flow stores it (storeGrant). The same mailbox rules apply: a verified address, and the server's
 * user name when it names one.
 */

export interface DevicePrompt {
  verificationUri: string;
  verificationUriComplete?: string | undefined;
  userCode: string;
  expiresIn: number;
}

export interface DeviceAuthorizeDeps extends GrantStoreDeps {
  servers: ServerLookup;
  integrations: Pick<IntegrationService, 'get' | 'client' | 'clearMisconfigured'>;
}

/** Why the device flow stopped; the CLI prints the message and exits non-zero. */
export class DeviceAuthorizationFailure extends AppError {
  constructor(
    readonly reason: 'not_oauth' | 'not_microsoft' | 'unsupported' | 'expired' | 'denied' | 'wrong_mailbox' | 'failed',
    message: string,
    /** For a terminal in another language: the message's key (`device.failure.<…>`) and its values. */
    readonly translation: { key: string; params?: Record<string, string> },
  ) {
    super('oauth_failed', { message });
  }
}

/** Runs the device flow for one server; a refusal after the prompt is audited like a refused callback. */
export async function authorizeWithDevice(
  deps: DeviceAuthorizeDeps,
  params: Parameters<typeof runDeviceFlow>[1],
): Promise<{ serverId: string; mailbox: string }> {
  try {
    return await runDeviceFlow(deps, params);
  } catch (err) {
    if (err instanceof DeviceAuthorizationFailure && !['not_oauth', 'not_microsoft'].includes(err.reason))
      await deps.audit.record({
        actor: params.actor,
        action: 'oauth.authorize',
        target: `smtp_server:${params.serverId}`,
        outcome: 'failure',
        detail: { via: 'device_code', error: err.reason },
      });
    throw err;
  }
}

async function runDeviceFlow(
  deps: DeviceAuthorizeDeps,
  params: {
    serverId: string;
    actor: Actor;
    onPrompt: (prompt: DevicePrompt) => void;
    signal?: AbortSignal;
  },
): Promise<{ serverId: string; mailbox: string }> {
  const server = await deps.servers.get(params.serverId);
  if (server.authMethod !== 'oauth2' || !server.oauthIntegrationId)
    throw new DeviceAuthorizationFailure(
      'not_oauth',
      `Server ${server.id} does not use OAuth 2.0: set its authentication to OAuth 2.0 and choose an integration first.`,
      { key: 'device.failure.not_oauth', params: { serverId: server.id } },
    );
  const integration = await deps.integrations.get(server.oauthIntegrationId);
  const provider = integration.value.provider;
  if (provider !== 'microsoft')
    throw new DeviceAuthorizationFailure(
      'not_microsoft',
      `The device code flow is for Microsoft integrations; "${integration.value.name}" is ${provider}. Use Authorize on the server page or a reconnect link.`,
      { key: 'device.failure.not_microsoft', params: { name: integration.value.name, provider } },
    );
  const client = await deps.integrations.client(integration.id);
  if (!client.hasDeviceAuthorization)
    throw new DeviceAuthorizationFailure(
      'unsupported',
      'The provider announces no device authorization endpoint for this integration.',
      { key: 'device.failure.unsupported' },
    );
  let tokens;
  try {
    const device = await client.initiateDeviceAuthorization(
      scopesForServer(server.protocol, integration.value.scopes, integration.value.graphBaseUrl).join(' '),
    );
    params.onPrompt({
      verificationUri: device.verificationUri,
      verificationUriComplete: device.verificationUriComplete,
      userCode: device.userCode,
      expiresIn: device.expiresIn,
    });
    tokens = await client.pollDeviceAuthorization(device, params.signal);
  } catch (err) {
    if (!(err instanceof OAuthProtocolError)) throw err;
    if (err.oauthError === 'expired_token')
      throw new DeviceAuthorizationFailure(
        'expired',
        'The code expired before anyone confirmed it. Run the command again.',
        { key: 'device.failure.expired' },
      );
    if (err.kind === 'denied')
      throw new DeviceAuthorizationFailure('denied', 'Access was denied at the provider; nothing was changed.', {
        key: 'device.failure.denied',
      });
    const detail = `${err.oauthError ?? err.kind}${err.description ? `: ${err.description}` : ''}`;
    throw new DeviceAuthorizationFailure('failed', `The provider did not complete the authorization (${detail}).`, {
      key: 'device.failure.failed',
      params: { detail },
    });
  }
  const claims = tokens.claims;
  if (claims?.email !== undefined && claims.emailVerified === false)
    throw new DeviceAuthorizationFailure(
      'failed',
      `The provider says ${claims.email} is not verified, so mailgate will not send as it.`,
      { key: 'device.failure.unverified', params: { email: claims.email } },
    );
  const mailbox =
    claims?.email ?? (claims ? providerOf(provider).mailboxFromClaims?.(claims) : undefined) ?? server.username;
  if (!mailbox)
    throw new DeviceAuthorizationFailure('failed', 'The signed-in account has no email address in its ID token.', {
      key: 'device.failure.no_email',
    });
  if (server.username && server.username.toLowerCase() !== mailbox.toLowerCase())
    throw new DeviceAuthorizationFailure(
      'wrong_mailbox',
      `You signed in as ${mailbox}, but this server sends as ${server.username}. Nothing was changed.`,
      { key: 'device.failure.wrong_mailbox', params: { mailbox, username: server.username } },
    );
  await storeGrant(deps, {
    serverId: server.id,
    integrationId: integration.id,
    provider,
    mailbox,
    tokens,
    actor: params.actor,
    auditDetail: { via: 'device_code' },
  });
  return { serverId: server.id, mailbox };
}
