import { providerOf, type OAuthDiagnosis, type OAuthProviderKind, type ProviderSettings } from './providers/index.js';

/**
 * Turns a provider's error (OAuth `error` + `error_description`) into what the admin should do: the
 * provider's own reading first (oauth/providers/), then the hints that hold for every provider.
 */

export type { OAuthDiagnosis } from './providers/index.js';

const NOT_ANSWERING =
  'The provider is not answering right now. mailgate retries with backoff; queued mail waits and is delivered once the provider is back.';

/** The hints that hold for every provider, by OAuth error code; pages translate them by these codes. */
export const OAUTH_HINTS = {
  invalid_grant:
    'The provider rejected the refresh token (revoked, expired or reused). Press Re-authorize to connect the mailbox again.',
  invalid_client:
    'The provider rejected the client ID or secret. Check the client ID, and rotate the client secret if it expired or was regenerated.',
  unauthorized_client:
    'The provider rejected the client ID or secret. Check the client ID, and rotate the client secret if it expired or was regenerated.',
  egress_denied:
    'mailgate refused to connect to this endpoint: its address is on a network that admin-entered endpoints may not reach. Correct the issuer or endpoints, or have the operator list the host in MAILGATE_EGRESS_ALLOW.',
  access_denied:
    'Access was denied at the provider (the user pressed Cancel or an administrator blocks the app). Press Authorize to try again.',
  timeout: NOT_ANSWERING,
  network: NOT_ANSWERING,
  http_error: NOT_ANSWERING,
  temporarily_unavailable: NOT_ANSWERING,
  server_error: NOT_ANSWERING,
  invalid_scope:
    "The scopes were refused. Check the integration's scopes and the scopes enabled for the app at the provider.",
} as const satisfies Record<string, string>;

export type OAuthHintCode = keyof typeof OAUTH_HINTS;

export const OAUTH_DIAGNOSIS_CODES = Object.keys(OAUTH_HINTS) as OAuthHintCode[];

function isHintCode(code: string): code is OAuthHintCode {
  return Object.hasOwn(OAUTH_HINTS, code);
}

export function diagnoseOAuthError(
  integration: ProviderSettings & { provider: OAuthProviderKind },
  error: string | undefined,
  description: string | undefined,
): OAuthDiagnosis {
  const specific = providerOf(integration.provider).diagnose?.(error, description, integration);
  if (specific) return specific;
  const code = error ?? 'unknown';
  if (isHintCode(code)) return { code, hint: OAUTH_HINTS[code] };
  return {
    code,
    hint: description ? `The provider said: ${description.slice(0, 300)}` : 'The provider refused the request.',
  };
}
