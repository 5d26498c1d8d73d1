import type { Actor, AuditRecorder } from '../admin/types.js';
import type { Keyring } from '../crypto/keyring.js';
import { AppError } from '../errors.js';
import type { Logger } from '../log.js';
import { OAuthProtocolError } from '../oauth/client.js';
import type { IntegrationService } from '../oauth/integrations.js';
import { revocationNote } from '../oauth/providers/index.js';
import { VersionConflictError, type Store } from '../store/store.js';
import { GRANTS, openToken, type GrantRecord } from './grants.js';
import { REFRESH_QUEUE } from './scheduler.js';
import { grantIndexChanges } from './grant-index.js';

/**
 * Disconnect: the local tokens are deleted first (so mailgate stops using them even if the provider is
 * down), then the refresh token is revoked at the provider (RFC 7009) where it has an endpoint. Held
 * messages stay held: the server has no mailbox until someone authorizes again.
 */

export interface DisconnectResult {
  serverId: string;
  mailbox: string;
  localTokensDeleted: true;
  revokedAtProvider: boolean;
  /** Why the provider was not (or could not be) told, and what to do instead. */
  note: string | null;
}

export interface RevocationDeps {
  store: Store;
  keyring: Keyring;
  log: Logger;
  audit: AuditRecorder;
  integrations: IntegrationService;
}

export async function disconnectGrant(
  deps: RevocationDeps,
  grantId: string,
  actor: Actor,
  ip?: string,
): Promise<DisconnectResult> {
  const doc = await deps.store.get<GrantRecord>(GRANTS, grantId);
  if (!doc) throw new AppError('not_found', { message: 'This server has no authorized mailbox to disconnect.' });
  const g = doc.value;
  // Held in memory only for the revocation request below.
  const token = g.tokens.refreshToken
    ? openToken(deps.keyring, grantId, 'refreshToken', g.tokens.refreshToken)
    : openToken(deps.keyring, grantId, 'accessToken', g.tokens.accessToken);
  const hint = g.tokens.refreshToken ? 'refresh_token' : 'access_token';
  // Whoever deletes this version first does the rest; a concurrent Disconnect finds nothing to do.
  const deleted = await deps.store
    .delete(GRANTS, grantId, { ifVersion: doc.version, ...grantIndexChanges(g, null, Date.now()) })
    .catch((err: unknown) => {
      if (err instanceof VersionConflictError) return false;
      throw err;
    });
  if (!deleted)
    throw new AppError('not_found', {
      message: 'This server has no authorized mailbox to disconnect (it was just disconnected).',
    });
  await deps.store.unschedule(REFRESH_QUEUE, grantId);

  const integration = await deps.integrations.get(g.integrationId).catch(() => null);
  let revokedAtProvider = false;
  let note: string | null = integration
    ? revocationNote(integration.value.provider)
    : 'The integration no longer exists, so the provider could not be told.';
  let providerError: string | null = null;
  if (integration) {
    try {
      const client = await deps.integrations.client(integration.id);
      revokedAtProvider = await client.revoke(token, hint);
      if (!revokedAtProvider && !note)
        note =
          "This provider publishes no revocation endpoint; remove the app's access in the account's security settings at the provider.";
    } catch (err) {
      const e = err instanceof OAuthProtocolError ? err : null;
      providerError = e?.oauthError ?? 'error';
      note = `The local tokens are deleted, but the provider's revocation endpoint failed (${providerError}). Remove the app's access in the account's security settings at the provider.`;
      deps.log.warn(
        { grantId, code: providerError },
        'token revocation at the provider failed; local tokens were deleted',
      );
    }
  }
  await deps.audit.record({
    actor,
    action: 'oauth.grant.disconnect',
    target: `smtp_server:${g.serverId}`,
    outcome: providerError ? 'failure' : 'success',
    ...(ip ? { ip } : {}),
    detail: { mailbox: g.mailbox, localTokensDeleted: true, revokedAtProvider, providerError },
  });
  return { serverId: g.serverId, mailbox: g.mailbox, localTokensDeleted: true, revokedAtProvider, note };
}
