import { INTEGRATION_ATTENTION_INDEX, SECRET_WARNING_DAYS, secretExpiryOf } from '../oauth/integration-index.js';
import type { IntegrationService } from '../oauth/integrations.js';
import { providerOf } from '../oauth/providers/index.js';
import type { Store } from '../store/store.js';
import { NEEDS_REAUTH_INDEX } from './grant-index.js';
import { GRANTS, type GrantRecord } from './grants.js';

/**
 * Problems an admin should hear about before mail stops: shown on the server list and in /readyz. Read from the
 * indexes kept with every grant and integration write (src/tokens/grant-index.ts, src/oauth/integration-index.ts),
 * so the cost follows the number of problems (at most WARNING_LIMIT of each), not the number of mailboxes.
 */

export interface OAuthWarning {
  /** `needs_reauth`, `secret_expiring`, `secret_expired`, `integration_misconfigured`, or a provider's own (e.g. `google_in_testing`). */
  kind: string;
  target: string;
  /** English; pages in another language render `warning.<kind>` with `params` instead. */
  message: string;
  params?: Record<string, string | number>;
}

export { SECRET_WARNING_DAYS };

/** The most warnings of each source read per call: a page or probe names a few; counts come from the counters. */
export const WARNING_LIMIT = 100;

export async function collectOAuthWarnings(
  deps: { store: Store; integrations: IntegrationService },
  now = Date.now(),
): Promise<OAuthWarning[]> {
  const warnings: OAuthWarning[] = [];
  const reauth = await deps.store.scheduled(NEEDS_REAUTH_INDEX, { limit: WARNING_LIMIT });
  const grants = await Promise.all(reauth.map((e) => deps.store.get<GrantRecord>(GRANTS, e.id)));
  for (const g of grants) {
    if (g?.value.status === 'needs_reauth') {
      warnings.push({
        kind: 'needs_reauth',
        target: `smtp_server:${g.value.serverId}`,
        message: `${g.value.mailbox} needs re-authorization: ${g.value.lastError?.hint ?? 'press Re-authorize on the server page.'}`,
        params: { mailbox: g.value.mailbox },
      });
    }
  }
  const due = (await deps.store.scheduled(INTEGRATION_ATTENTION_INDEX, { limit: WARNING_LIMIT })).filter(
    (e) => e.dueAt <= now,
  );
  for (const i of await Promise.all(due.map((e) => deps.integrations.find(e.id)))) {
    if (!i) continue;
    const v = i.value;
    const target = `oauth_integration:${i.id}`;
    if (v.secretExpiresAt) {
      const expires = secretExpiryOf(v.secretExpiresAt);
      const days = Math.floor((expires - now) / 86_400_000);
      if (expires < now)
        warnings.push({
          kind: 'secret_expired',
          target,
          message: `The client secret of "${v.name}" expired on ${v.secretExpiresAt}; rotate it now.`,
          params: { name: v.name, date: v.secretExpiresAt },
        });
      else if (days < SECRET_WARNING_DAYS)
        warnings.push({
          kind: 'secret_expiring',
          target,
          message: `The client secret of "${v.name}" expires on ${v.secretExpiresAt} (in ${days} day${days === 1 ? '' : 's'}); rotate it before then.`,
          params: { name: v.name, date: v.secretExpiresAt, days },
        });
    }
    for (const w of providerOf(v.provider).warnings?.(v) ?? [])
      warnings.push({ ...w, target, params: { name: v.name } });
    if (v.misconfigured)
      warnings.push({
        kind: 'integration_misconfigured',
        target,
        message: `"${v.name}": ${v.misconfigured.hint}`,
        params: { name: v.name },
      });
  }
  return warnings;
}
