import type { Actor, AuditRecorder } from '../admin/types.js';
import { AppError } from '../errors.js';
import { findEgressDenial } from '../net/egress.js';
import type { Doc, Store } from '../store/store.js';
import { CREDENTIAL_FIELDS, grantTypeOf, isAppOnly, type CredentialInput } from '../oauth/integration-credentials.js';
import type { IntegrationRecord } from '../oauth/integration-types.js';
import { appOnlyScope } from '../oauth/providers/index.js';
import { OAuthProtocolError, type OAuthClient } from '../oauth/client.js';
import type { IntegrationService } from '../oauth/integrations.js';
import { integrationGrantsIndex } from './grant-index.js';
import { acquireGrantLock, GRANTS, type GrantRecord } from './grants.js';
import type { TokenService } from './refresh.js';

/**
 * Credential rotation (client secret, client certificate, service-account key): the new credential is proven
 * with a real token request before it replaces the old one, so a typo never takes mail down. The proof is a
 * refresh of an authorized grant (its tokens are stored like any refresh, rotated refresh token included);
 * for app-only integrations and without a grant, an app-only token request (client credentials, or the JWT
 * bearer grant of a service account). Until the proof succeeds the stored (old) credential stays in use.
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
  provenWith: 'refresh_token' | 'client_credentials' | 'jwt_bearer';
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

/** The integration's newest grants (up to 50), found through its index: a few reads, not a scan of every grant. */
async function grantsOfIntegration(store: Store, integrationId: string): Promise<Doc<GrantRecord>[]> {
  const entries = await store.scheduled(integrationGrantsIndex(integrationId), { limit: 50, newestFirst: true });
  const docs = await Promise.all(entries.map((e) => store.get<GrantRecord>(GRANTS, e.id)));
  return docs.filter((g): g is Doc<GrantRecord> => g !== null && g.value.integrationId === integrationId);
}

/** One real token request with the candidate client: a refresh of an authorized grant, else client_credentials. */
async function prove(
  deps: SecretRotationDeps,
  integration: Doc<IntegrationRecord>,
  candidate: OAuthClient,
): Promise<Proof> {
  const mine = await grantsOfIntegration(deps.store, integration.id);
  const grant = mine.find((g) => g.value.status === 'active' && g.value.tokens.refreshToken);
  try {
    if (isAppOnly(integration.value)) {
      // As a server of this integration asks (its scope and mailbox), else for SMTP as the application itself.
      const used = mine.find((g) => g.value.appOnly)?.value;
      await candidate.appOnlyToken(
        used?.appOnly
          ? { scope: used.appOnly.scope, subject: used.mailbox }
          : { scope: appOnlyScope(integration.value, 'smtp')! },
      );
      return { provenWith: grantTypeOf(integration.value) === 'service_account' ? 'jwt_bearer' : 'client_credentials' };
    }
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
  input: CredentialInput & { expiresAt?: string | null | undefined },
  actor: Actor,
  ip?: string,
): Promise<RotationResult> {
  const integration = await deps.integrations.get(integrationId);
  const { expiresAt, ...credentials } = input;
  const problems = deps.integrations.checkReplacement(integration, credentials);
  if (problems.length > 0)
    throw new AppError('validation_failed', {
      message: problems.map((d) => `${d.field}: ${d.message}`).join('; '),
      details: problems,
    });
  const field = CREDENTIAL_FIELDS.find((f) => credentials[f]) ?? 'clientSecret';
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
    throw new AppError('validation_failed', { message, details: [{ field, message }] });
  };
  let candidate: OAuthClient;
  try {
    candidate = await deps.integrations.clientFor(integration, credentials);
  } catch (err) {
    return fail(
      findEgressDenial(err) ? 'egress_denied' : 'discovery_failed',
      `The provider could not be reached to test the new secret (${(err as Error).message}); the old secret stays in use.`,
      err,
    );
  }
  const proof = await prove(deps, integration, candidate);
  if ('refused' in proof) return fail(proof.refused, proof.message, proof.cause);
  const { provenWith } = proof;
  await deps.integrations.storeProvenSecret(integrationId, credentials, expiresAt);
  await deps.audit.record({
    actor,
    action: 'oauth_integration.rotate_secret',
    target: `oauth_integration:${integrationId}`,
    outcome: 'success',
    ...(ip ? { ip } : {}),
    detail: { provenWith, field, secretExpiresAt: expiresAt ?? null },
  });
  return { integrationId, provenWith };
}
