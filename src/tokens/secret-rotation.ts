import type { Actor, AuditRecorder } from '../admin/types.js';
import { AppError } from '../errors.js';
import { findEgressDenial } from '../net/egress.js';
import type { Doc, Store } from '../store/store.js';
import { OAuthProtocolError, type OAuthClient } from '../oauth/client.js';
import type { IntegrationService } from '../oauth/integrations.js';
import { integrationGrantsIndex } from './grant-index.js';
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
  /** How often, and how far apart, to try for the lock of a grant being refreshed (default 100 × 50 ms). */
  lockWait?: { attempts: number; intervalMs: number } | undefined;
}

export interface RotationResult {
  integrationId: string;
  provenWith: 'refresh_token' | 'client_credentials';
}

/** What proving a new secret came to: proven, or refused with an audit code and a message for the admin. */
type Proof = { provenWith: RotationResult['provenWith'] } | { refused: string; message: string; cause?: unknown };

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const BUSY =
  'The grant used to test the secret is being refreshed; try again in a moment. The old secret stays in use.';

function refusalOf(err: unknown, withGrant: boolean): Proof {
  if (findEgressDenial(err))
    return {
      refused: 'egress_denied',
      message: 'The token endpoint is on a network mailgate may not reach.',
      cause: err,
    };
  if (err instanceof OAuthProtocolError && err.kind === 'invalid_client') {
    return {
      refused: 'invalid_client',
      message:
        'The provider rejected the new client secret (invalid_client). Nothing was changed: the old secret stays in use.',
    };
  }
  if (err instanceof OAuthProtocolError && !withGrant) {
    const code = err.oauthError ?? err.kind;
    return {
      refused: code,
      message: `The new secret could not be proven: the provider does not allow a client_credentials request (${code}). Authorize a server with this integration first; the old secret stays in use.`,
    };
  }
  const code =
    err instanceof OAuthProtocolError ? (err.oauthError ?? err.kind) : err instanceof AppError ? err.code : 'error';
  return { refused: code, message: `The new secret could not be proven (${code}); the old secret stays in use.` };
}

/** An authorized grant of the integration that can refresh, found through its index (a few reads, not a scan). */
async function provingGrant(store: Store, integrationId: string): Promise<Doc<GrantRecord> | undefined> {
  const candidates = await store.scheduled(integrationGrantsIndex(integrationId), { limit: 50, newestFirst: true });
  for (const { id } of candidates) {
    const g = await store.get<GrantRecord>(GRANTS, id);
    if (g && g.value.integrationId === integrationId && g.value.status === 'active' && g.value.tokens.refreshToken)
      return g;
  }
  return undefined;
}

/** One real token request with the candidate client: a refresh of an authorized grant, else client_credentials. */
async function prove(deps: SecretRotationDeps, integrationId: string, candidate: OAuthClient): Promise<Proof> {
  const grant = await provingGrant(deps.store, integrationId);
  try {
    if (!grant) {
      await candidate.clientCredentials();
      return { provenWith: 'client_credentials' };
    }
    const wait = deps.lockWait ?? { attempts: 100, intervalMs: 50 };
    let lock = null;
    for (let i = 0; i < wait.attempts && !lock; i++) {
      lock = await acquireGrantLock(deps.store, grant.id, deps.tokens.lockTtlMs);
      if (!lock) await sleep(wait.intervalMs);
    }
    if (!lock) return { refused: 'busy', message: BUSY };
    try {
      const fresh = await deps.tokens.get(grant.id);
      if (!fresh) return { refused: 'no_grant', message: 'The grant used to test the secret disappeared; try again.' };
      const refresh = await deps.tokens.refreshWith(fresh, candidate, lock, { rethrow: true });
      if (refresh.outcome === 'lock_lost') return { refused: 'busy', message: BUSY };
      if (refresh.outcome === 'failed') return refusalOf(refresh.error, true);
      return { provenWith: 'refresh_token' };
    } finally {
      await lock.release().catch(() => false);
    }
  } catch (err) {
    return refusalOf(err, grant !== undefined);
  }
}

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
  const proof = await prove(deps, integrationId, candidate);
  if ('refused' in proof) return fail(proof.refused, proof.message, proof.cause);
  const { provenWith } = proof;
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
