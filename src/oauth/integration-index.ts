import type { ScheduleMove } from '../store/store.js';
import { providerOf } from './providers/index.js';
import type { IntegrationRecord } from './integrations.js';

/**
 * The integrations that warn now or will warn at a known time (a client secret that expires, a misconfiguration, a
 * provider's own warning such as a Google app in Testing), by the time their first warning starts. Readiness and
 * the banner read the entries due now from this index instead of every integration; the move rides along with
 * every write of an integration.
 */
export const INTEGRATION_ATTENTION_INDEX = 'oauth_integrations_attention';

/** Days before a client secret's expiry from which it is reported. */
export const SECRET_WARNING_DAYS = 14;

export function secretExpiryOf(secretExpiresAt: string): number {
  return Date.parse(`${secretExpiresAt}T23:59:59Z`);
}

/** When this integration's first warning starts (0: now), or null when it has none to give. */
export function attentionDueAt(record: IntegrationRecord): number | null {
  if (record.misconfigured || (providerOf(record.provider).warnings?.(record) ?? []).length > 0) return 0;
  if (!record.secretExpiresAt) return null;
  const expires = secretExpiryOf(record.secretExpiresAt);
  return Number.isFinite(expires) ? Math.max(0, expires - SECRET_WARNING_DAYS * 86_400_000) : null;
}

export function attentionMove(record: IntegrationRecord | null): ScheduleMove {
  return { queue: INTEGRATION_ATTENTION_INDEX, dueAt: record ? attentionDueAt(record) : null };
}
