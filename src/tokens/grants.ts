import type { Keyring } from '../crypto/keyring.js';
import type { Lock, Store } from '../store/store.js';

/**
 * A grant: the tokens one mailbox gave mailgate for one SMTP server (one grant per server; its id is the
 * server id). Token values are sealed with field paths `tokens.accessToken` / `tokens.refreshToken`.
 */

export const GRANTS = 'oauth_grants';

export type GrantStatus = 'active' | 'needs_reauth';

export interface GrantError {
  at: number;
  /** `temporary`, `invalid_grant`, `invalid_client` or `protocol`. */
  kind: string;
  code: string;
  message: string;
  hint: string;
}

export interface GrantRecord {
  serverId: string;
  integrationId: string;
  mailbox: string;
  subject: string;
  scope: string | null;
  status: GrantStatus;
  tokens: {
    accessToken: string;
    refreshToken: string | null;
    /** ms since epoch. */
    expiresAt: number;
    obtainedAt: number;
  };
  lastRefreshAt: number | null;
  lastError: GrantError | null;
  /** Consecutive temporary failures; drives the backoff. */
  failures: number;
  /** No refresh attempt before this time (backoff after a temporary failure). */
  retryAt: number | null;
  /** When the current run of temporary failures began (absent or null while refreshes work). */
  failingSince?: number | null;
  authorizedAt: number;
  authorizedBy: string;
  /**
   * Set on the grant of a server whose integration has app-only credentials: no user, no refresh token; each
   * access token is a new client credentials or JWT bearer request for this scope (as `mailbox` for a
   * service account). See tokens/app-only.ts.
   */
  appOnly?: { scope: string; protocol: string } | undefined;
}

/** The lock every refresher of a grant takes, in this process and across instances. */
export function acquireGrantLock(
  store: Pick<Store, 'acquireLock'>,
  grantId: string,
  ttlMs: number,
): Promise<Lock | null> {
  return store.acquireLock(`oauth_grant:${grantId}`, ttlMs);
}

/** How many grants hold tokens issued to this integration's client. */
export async function countGrantsOfIntegration(
  store: Pick<Store, 'scheduleStats'>,
  integrationId: string,
): Promise<number> {
  // The index kept with every grant write (grant-index.ts), not a scan of every grant.
  return (await store.scheduleStats(`oauth_grants_of:${integrationId}`)).count;
}

export function grantIdForServer(serverId: string): string {
  return serverId;
}

export function sealToken(
  keyring: Keyring,
  grantId: string,
  field: 'accessToken' | 'refreshToken',
  value: string,
): string {
  return keyring.seal(value, { collection: GRANTS, id: grantId, field: `tokens.${field}` });
}

export function openToken(
  keyring: Keyring,
  grantId: string,
  field: 'accessToken' | 'refreshToken',
  sealed: string,
): string {
  return keyring.open(sealed, { collection: GRANTS, id: grantId, field: `tokens.${field}` });
}

/** The non-secret view of a grant, for pages and the API. */
export interface GrantView {
  id: string;
  serverId: string;
  integrationId: string;
  mailbox: string;
  status: GrantStatus;
  hasRefreshToken: boolean;
  accessTokenExpiresAt: number;
  lastRefreshAt: number | null;
  nextRefreshAt: number | null;
  lastError: GrantError | null;
  retryAt: number | null;
  authorizedAt: number;
  authorizedBy: string;
}
