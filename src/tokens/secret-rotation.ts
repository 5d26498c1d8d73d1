import type { Actor, AuditRecorder } from '../admin/types.js';
import { AppError } from '../errors.js';
import { findEgressDenial } from '../net/egress.js';
import type { Store } from '../store/store.js';
import { OAuthProtocolError, type OAuthClient } from '../oauth/client.js';
import type { IntegrationService } from '../oauth/integrations.js';
import { acquireGrantLock, GRANTS, type GrantRecord } from './grants.js';
import type { TokenService } from './refresh.js';

/**
 * Client secret rotation: the new secret is proven with a real token request before it replaces the old
 * one, so a typo never takes mail down. The proof is a refresh of an authorized grant (its tokens are
 * stored like any refresh, rotated refresh token included); without a grant, a client_credentials request
 * where the provider allows it. Until the proof succeeds the stored (old) secret stays in use.
 */

export interface SecretRotationDeps {
  store: Store;
  audit: AuditRecorder;
  integrations: IntegrationService;
  tokens: TokenService;
}

export interface RotationResult {
  integrationId: string;
  provenWith: 'refresh_token' | 'client_credentials';
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function rotateClientSecret(
  deps: SecretRotationDeps,
  integrationId: string,
  input: { clientSecret: string; expiresAt?: string | null | undefined },
  actor: Actor,
  ip?: string,
): Promise<RotationResult> {
  const integration = await deps.integrations.get(integrationId);
  const fail = async (code: string, message: string, cause?: unknown): Promise<never> => {
    await deps.audit.record({
      actor,
      action: 'oauth_integration.rotate_secret',
      target: `oauth_integration:${integrationId}`,
      outcome: 'failure',
      ...(ip ? { ip } : {}),
      detail: { error: code },
    });
    // A refused endpoint is no fault of the secret: say so with the egress error itself.
    const denied = findEgressDenial(cause);
    if (denied) throw denied;
    throw new AppError('validation_failed', { message, details: [{ field: 'clientSecret', message }] });
  };
  let candidate: OAuthClient;
  try {
    candidate = await deps.integrations.clientFor(integration, input.clientSecret);
  } catch (err) {
    return fail(
      findEgressDenial(err) ? 'egress_denied' : 'discovery_failed',
      `The provider could not be reached to test the new secret (${(err as Error).message}); the old secret stays in use.`,
      err,
    );
  }

  let provenWith: RotationResult['provenWith'];
  const grants = (await deps.store.list<GrantRecord>(GRANTS)).filter(
    (g) => g.value.integrationId === integrationId && g.value.status === 'active' && g.value.tokens.refreshToken,
  );
  const grant = grants[0];
  try {
    if (grant) {
      let lock = null;
      for (let i = 0; i < 100 && !lock; i++) {
        lock = await acquireGrantLock(deps.store, grant.id, deps.tokens.lockTtlMs);
        if (!lock) await sleep(50);
      }
      if (!lock)
        return await fail(
          'busy',
          'The grant used to test the secret is being refreshed; try again in a moment. The old secret stays in use.',
        );
      try {
        const fresh = await deps.tokens.get(grant.id);
        if (!fresh) return await fail('no_grant', 'The grant used to test the secret disappeared; try again.');
        await deps.tokens.refreshWith(fresh, candidate, lock, { rethrow: true });
      } finally {
        await lock.release().catch(() => false);
      }
      provenWith = 'refresh_token';
    } else {
      await candidate.clientCredentials();
      provenWith = 'client_credentials';
    }
  } catch (err) {
    if (findEgressDenial(err))
      return fail('egress_denied', 'The token endpoint is on a network mailgate may not reach.', err);
    if (err instanceof OAuthProtocolError && err.kind === 'invalid_client') {
      return fail(
        'invalid_client',
        'The provider rejected the new client secret (invalid_client). Nothing was changed: the old secret stays in use.',
      );
    }
    if (err instanceof OAuthProtocolError && !grant) {
      return fail(
        err.oauthError ?? err.kind,
        `The new secret could not be proven: the provider does not allow a client_credentials request (${err.oauthError ?? err.kind}). Authorize a server with this integration first; the old secret stays in use.`,
      );
    }
    const code =
      err instanceof AppError ? err.code : err instanceof OAuthProtocolError ? (err.oauthError ?? err.kind) : 'error';
    return fail(code, `The new secret could not be proven (${code}); the old secret stays in use.`);
  }
  await deps.integrations.storeProvenSecret(integrationId, input.clientSecret, input.expiresAt);
  await deps.audit.record({
    actor,
    action: 'oauth_integration.rotate_secret',
    target: `oauth_integration:${integrationId}`,
    outcome: 'success',
    ...(ip ? { ip } : {}),
    detail: { provenWith, secretExpiresAt: input.expiresAt ?? null },
  });
  return { integrationId, provenWith };
}
