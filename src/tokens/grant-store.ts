import type { Actor, AuditRecorder } from '../admin/types.js';
import type { Clock } from '../clock.js';
import type { Keyring } from '../crypto/keyring.js';
import type { TokenSet } from '../oauth/client.js';
import type { IntegrationService } from '../oauth/integrations.js';
import { VersionConflictError, type Doc, type Store } from '../store/store.js';
import { grantIndexChanges } from './grant-index.js';
import { GRANTS, sealToken, type GrantRecord } from './grants.js';
import type { TokenService } from './refresh.js';

/**
 * Where every way of authorizing a mailbox ends (the Authorize callback, a reconnect link, the device flow on
 * the command line): one grant per server, tokens sealed, audited, and the token service told so held mail
 * is released on this instance.
 */

export interface GrantStoreDeps {
  store: Store;
  keyring: Keyring;
  audit: AuditRecorder;
  integrations: Pick<IntegrationService, 'clearMisconfigured'>;
  tokens: Pick<TokenService, 'notifyAuthorized'>;
  clock: Clock;
}

export interface NewGrant {
  serverId: string;
  integrationId: string;
  provider: string;
  mailbox: string;
  tokens: TokenSet;
  actor: Actor;
  ip?: string | undefined;
  /** Extra non-secret audit facts (e.g. `via: "reconnect_link"`). */
  auditDetail?: Record<string, string>;
}

export async function storeGrant(deps: GrantStoreDeps, grant: NewGrant): Promise<void> {
  const { tokens, actor } = grant;
  const grantId = grant.serverId;
  const now = deps.clock.now();
  const record: GrantRecord = {
    serverId: grant.serverId,
    integrationId: grant.integrationId,
    mailbox: grant.mailbox,
    subject: tokens.claims?.sub ?? grant.mailbox,
    scope: tokens.scope ?? null,
    status: 'active',
    tokens: {
      accessToken: sealToken(deps.keyring, grantId, 'accessToken', tokens.accessToken),
      refreshToken: tokens.refreshToken ? sealToken(deps.keyring, grantId, 'refreshToken', tokens.refreshToken) : null,
      expiresAt: now + (tokens.expiresIn ?? 3600) * 1000,
      obtainedAt: now,
    },
    lastRefreshAt: null,
    lastError: null,
    failures: 0,
    retryAt: null,
    authorizedAt: now,
    authorizedBy: actor.type === 'user' ? actor.email : actor.id,
  };
  // Re-authorization replaces the old grant whatever its state (its tokens are dead or superseded).
  const doc = await replaceGrant(deps.store, grantId, record, now);
  await deps.integrations.clearMisconfigured(grant.integrationId);
  await deps.audit.record({
    actor,
    action: 'oauth.authorize',
    target: `smtp_server:${grant.serverId}`,
    outcome: 'success',
    ...(grant.ip ? { ip: grant.ip } : {}),
    detail: {
      mailbox: grant.mailbox,
      integrationId: grant.integrationId,
      provider: grant.provider,
      offlineAccess: Boolean(tokens.refreshToken),
      ...grant.auditDetail,
    },
  });
  await deps.tokens.notifyAuthorized(doc);
}

/** Writes the grant over whatever was there, moving its indexes from the old state (grant-index.ts); retried on a race. */
async function replaceGrant(
  store: Store,
  grantId: string,
  record: GrantRecord,
  now: number,
): Promise<Doc<GrantRecord>> {
  for (let attempt = 0; ; attempt++) {
    const before = await store.get<GrantRecord>(GRANTS, grantId);
    try {
      return await store.put(GRANTS, grantId, record, {
        ...grantIndexChanges(before?.value ?? null, record, now),
        ifVersion: before?.version ?? 0,
      });
    } catch (err) {
      if (!(err instanceof VersionConflictError) || attempt >= 4) throw err;
    }
  }
}
