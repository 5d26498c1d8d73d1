import type { IntegrationService } from '../oauth/integrations.js';
import { providerOf } from '../oauth/providers/index.js';
import type { Store } from '../store/store.js';
import { GRANTS, type GrantRecord } from './grants.js';

/** Problems an admin should hear about before mail stops: shown on the server list and in /readyz. */

export interface OAuthWarning {
  /** `needs_reauth`, `secret_expiring`, `secret_expired`, `integration_misconfigured`, or a provider's own (e.g. `google_in_testing`). */
  kind: string;
  target: string;
  message: string;
}

export const SECRET_WARNING_DAYS = 14;

export async function collectOAuthWarnings(
  deps: { store: Store; integrations: IntegrationService },
  now = Date.now(),
): Promise<OAuthWarning[]> {
  const warnings: OAuthWarning[] = [];
  for (const g of await deps.store.list<GrantRecord>(GRANTS)) {
    if (g.value.status === 'needs_reauth') {
      warnings.push({
        kind: 'needs_reauth',
        target: `smtp_server:${g.value.serverId}`,
        message: `${g.value.mailbox} needs re-authorization: ${g.value.lastError?.hint ?? 'press Re-authorize on the server page.'}`,
      });
    }
  }
  for (const i of await deps.integrations.list()) {
    const v = i.value;
    const target = `oauth_integration:${i.id}`;
    if (v.secretExpiresAt) {
      const expires = Date.parse(`${v.secretExpiresAt}T23:59:59Z`);
      const days = Math.floor((expires - now) / 86_400_000);
      if (expires < now)
        warnings.push({
          kind: 'secret_expired',
          target,
          message: `The client secret of "${v.name}" expired on ${v.secretExpiresAt}; rotate it now.`,
        });
      else if (days < SECRET_WARNING_DAYS)
        warnings.push({
          kind: 'secret_expiring',
          target,
          message: `The client secret of "${v.name}" expires on ${v.secretExpiresAt} (in ${days} day${days === 1 ? '' : 's'}); rotate it before then.`,
        });
    }
    for (const w of providerOf(v.provider).warnings?.(v) ?? []) warnings.push({ ...w, target });
    if (v.misconfigured)
      warnings.push({ kind: 'integration_misconfigured', target, message: `"${v.name}": ${v.misconfigured.hint}` });
  }
  return warnings;
}
