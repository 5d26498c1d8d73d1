import { providerOf, type OAuthDiagnosis, type OAuthProviderKind, type ProviderSettings } from './providers/index.js';

/**
 * Turns a provider's error (OAuth `error` + `error_description`) into what the admin should do: the
 * provider's own reading first (oauth/providers/), then the hints that hold for every provider.
 */

export type { OAuthDiagnosis } from './providers/index.js';

export function diagnoseOAuthError(
  integration: ProviderSettings & { provider: OAuthProviderKind },
  error: string | undefined,
  description: string | undefined,
): OAuthDiagnosis {
  const specific = providerOf(integration.provider).diagnose?.(error, description, integration);
  if (specific) return specific;
  const code = error ?? 'unknown';
  switch (code) {
    case 'invalid_grant':
      return {
        code,
        hint: 'The provider rejected the refresh token (revoked, expired or reused). Press Re-authorize to connect the mailbox again.',
      };
    case 'invalid_client':
    case 'unauthorized_client':
      return {
        code,
        hint: 'The provider rejected the client ID or secret. Check the client ID, and rotate the client secret if it expired or was regenerated.',
      };
    case 'egress_denied':
      return {
        code,
        hint: 'mailgate refused to connect to this endpoint: its address is on a network that admin-entered endpoints may not reach. Correct the issuer or endpoints, or have the operator list the host in MAILGATE_EGRESS_ALLOW.',
      };
    case 'access_denied':
      return {
        code,
        hint: 'Access was denied at the provider (the user pressed Cancel or an administrator blocks the app). Press Authorize to try again.',
      };
    case 'timeout':
    case 'network':
    case 'http_error':
    case 'temporarily_unavailable':
    case 'server_error':
      return {
        code,
        hint: 'The provider is not answering right now. mailgate retries with backoff; queued mail waits and is delivered once the provider is back.',
      };
    case 'invalid_scope':
      return {
        code,
        hint: "The scopes were refused. Check the integration's scopes and the scopes enabled for the app at the provider.",
      };
    default:
      return {
        code,
        hint: description ? `The provider said: ${description.slice(0, 300)}` : 'The provider refused the request.',
      };
  }
}
