import type { GrantRecord } from './grants.js';

/** When a grant's access token is refreshed: pure, so the scheduler, the token service and tests agree. */

export const REFRESH_MARGIN_FRACTION = 0.2;
export const REFRESH_MARGIN_MAX_MS = 5 * 60_000;
/**
 * Keep-alive: a grant is refreshed at least this often even when its access token lives longer and nothing is
 * sent, so an idle refresh token never lapses at the provider (Microsoft: 90 days unused; Google apps in Testing).
 */
export const KEEP_ALIVE_MS = 24 * 60 * 60_000;

/** How long before expiry a token is refreshed: the last 20 % of its lifetime, at most 5 minutes. */
export function refreshMarginMs(tokens: Pick<GrantRecord['tokens'], 'expiresAt' | 'obtainedAt'>): number {
  const lifetime = Math.max(0, tokens.expiresAt - tokens.obtainedAt);
  return Math.min(lifetime * REFRESH_MARGIN_FRACTION, REFRESH_MARGIN_MAX_MS);
}

/** When the scheduler should refresh this grant. */
type TokenTimes = Pick<GrantRecord['tokens'], 'expiresAt' | 'obtainedAt'>;

export function refreshDueAt(grant: { tokens: TokenTimes }): number {
  return Math.min(grant.tokens.expiresAt - refreshMarginMs(grant.tokens), grant.tokens.obtainedAt + KEEP_ALIVE_MS);
}

/** Pure: does this grant's access token need a refresh at `now`? */
export function needsRefresh(grant: { status: GrantRecord['status']; tokens: TokenTimes }, now: number): boolean {
  if (grant.status !== 'active') return false;
  return now >= refreshDueAt(grant);
}
