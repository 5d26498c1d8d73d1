import type { Clock } from '../clock.js';
import type { Keyring } from '../crypto/keyring.js';
import { AppError } from '../errors.js';
import { isAppOnly } from '../oauth/integration-credentials.js';
import type { IntegrationService } from '../oauth/integrations.js';
import { appOnlyScope } from '../oauth/providers/index.js';
import { VersionConflictError, type Doc, type Store } from '../store/store.js';
import type { ServerLookup } from './authorize.js';
import { grantIndexChanges } from './grant-index.js';
import { GRANTS, sealToken, type GrantRecord } from './grants.js';

/**
 * Grants of app-only servers (an integration with `client_credentials` or `service_account`): nobody presses
 * Authorize, so the grant is made from the server's settings — the mailbox is its `username`, the scope follows
 * its protocol — with no token yet. The token service then obtains every access token exactly as it refreshes
 * any other (one refresher across instances: lock, re-read, version-checked write), ahead of expiry through
 * the scheduler. A change of mailbox, protocol or integration makes a new grant; a server that leaves
 * app-only credentials loses its app-only grant.
 */

export const APP_ONLY_AUTHORIZED_BY = 'app-only credentials';

export interface AppOnlyDeps {
  store: Store;
  keyring: Keyring;
  integrations: Pick<IntegrationService, 'find'>;
  servers: ServerLookup;
  clock: Clock;
  /** A new or changed grant (the scheduler plans its first token, the queue releases held mail). */
  onChanged(doc: Doc<GrantRecord>): Promise<void>;
}

export class AppOnlyGrants {
  constructor(private readonly deps: AppOnlyDeps) {}

  /** The server's grant, made or brought up to date when the server uses app-only credentials. */
  async ensure(serverId: string): Promise<Doc<GrantRecord> | null> {
    const existing = await this.deps.store.get<GrantRecord>(GRANTS, serverId);
    const server = await this.deps.servers.get(serverId).catch((err: unknown) => {
      if (err instanceof AppError && err.code === 'not_found') return null;
      throw err;
    });
    const integration =
      server?.authMethod === 'oauth2' && server.oauthIntegrationId
        ? await this.deps.integrations.find(server.oauthIntegrationId)
        : null;
    if (!server || !integration || !isAppOnly(integration.value)) {
      // Delegated grants are Authorize's business; a stale app-only grant goes.
      if (!existing?.value.appOnly) return existing;
      const indexes = grantIndexChanges(existing.value, null, this.deps.clock.now());
      await this.deps.store.delete(GRANTS, serverId, { ifVersion: existing.version, ...indexes }).catch(() => false);
      return null;
    }
    const mailbox = server.username?.trim();
    if (!mailbox) return null;
    const protocol = server.protocol ?? 'smtp';
    const scope = appOnlyScope(integration.value, protocol)!;
    const g = existing?.value;
    if (g?.appOnly?.scope === scope && g.integrationId === integration.id && g.mailbox === mailbox) return existing;
    const now = this.deps.clock.now();
    const record: GrantRecord = {
      serverId,
      integrationId: integration.id,
      mailbox,
      subject: integration.value.clientId,
      scope,
      status: 'active',
      // No token yet: expired from the start, so the first use (or the scheduler, at once) requests one.
      tokens: {
        accessToken: sealToken(this.deps.keyring, serverId, 'accessToken', ''),
        refreshToken: null,
        expiresAt: 0,
        obtainedAt: 0,
      },
      lastRefreshAt: null,
      lastError: null,
      failures: 0,
      retryAt: null,
      authorizedAt: now,
      authorizedBy: APP_ONLY_AUTHORIZED_BY,
      appOnly: { scope, protocol },
    };
    let doc: Doc<GrantRecord>;
    try {
      doc = await this.deps.store.put(GRANTS, serverId, record, {
        ifVersion: existing?.version ?? 0,
        ...grantIndexChanges(existing?.value ?? null, record, now),
      });
    } catch (err) {
      // Another instance made it first: theirs is the grant.
      if (err instanceof VersionConflictError) return this.deps.store.get<GrantRecord>(GRANTS, serverId);
      throw err;
    }
    await this.deps.onChanged(doc);
    return doc;
  }
}
