import type { AuditRecorder } from '../admin/types.js';
import type { Clock } from '../clock.js';
import type { Keyring } from '../crypto/keyring.js';
import type { AppError } from '../errors.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import type { IntegrationService } from '../oauth/integrations.js';
import type { Doc, Store } from '../store/store.js';
import type { GrantRecord } from './grants.js';

/** The shapes the token service (refresh.ts) takes and hands out. */

export interface AccessToken {
  accessToken: string;
  expiresAt: number;
  mailbox: string;
}

export interface TokenListener {
  /** Called once when a grant becomes `needs_reauth` (the queue holds the server's mail). */
  needsReauth?(grant: { grantId: string; serverId: string; mailbox: string; hint?: string }): Promise<void> | void;
  /** Called after an authorization stored fresh tokens (the queue resumes the server). */
  authorized?(grant: { grantId: string; serverId: string; mailbox: string }): Promise<void> | void;
  /** Called after a failed refresh while temporary failures have lasted `failingFor` ms (listeners pick their threshold). */
  refreshFailing?(grant: {
    grantId: string;
    serverId: string;
    mailbox: string;
    since: number;
    failingFor: number;
    error: string;
  }): Promise<void> | void;
  /** Called when a refresh went through after temporary failures. */
  refreshRecovered?(grant: { grantId: string; serverId: string; mailbox: string }): Promise<void> | void;
}

export interface TokenServiceDeps {
  store: Store;
  keyring: Keyring;
  log: Logger;
  audit: AuditRecorder;
  integrations: IntegrationService;
  metrics?: Metrics | undefined;
  backoffBaseMs?: number | undefined;
  backoffMaxMs?: number | undefined;
  /** The time tokens are issued, expire and back off by (the system clock by default). */
  clock?: Clock | undefined;
  /** How much longer than the token request timeout the refresh lock lives (default 5 s). */
  lockMarginMs?: number | undefined;
  /** Makes and updates the grants of app-only servers (tokens/app-only.ts); without it only Authorize makes grants. */
  appOnly?: { ensure(serverId: string): Promise<Doc<GrantRecord> | null> } | undefined;
  /** Test seam: runs after the lock is taken and the grant re-read, before the token request. */
  afterLock?: ((grantId: string) => Promise<void>) | undefined;
}

/**
 * What one refresh under the lock came to. `lock_lost`: the lock or the grant changed before the token request,
 * so another holder's write is what to wait for. `failed`: the error for the caller, and whether the token
 * stored now still works (a refresh ahead of expiry that failed for a passing reason).
 */
export type RefreshOutcome =
  | { outcome: 'refreshed'; token: AccessToken }
  | { outcome: 'lock_lost' }
  | { outcome: 'failed'; error: AppError; tokenStillValid: boolean };
