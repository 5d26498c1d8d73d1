import type { OAuthProviderKind } from './providers.js';

/**
 * Turns a provider's error (OAuth `error` + `error_description`) into what the admin should do.
 * Microsoft puts AADSTS codes in the description; Google says little, so its hints lean on the integration's settings.
 */

export interface OAuthDiagnosis {
  code: string;
  hint: string;
}

const AADSTS_HINTS: Record<string, string> = {
  '700082':
    'The refresh token expired after being unused for too long (AADSTS700082). Press Re-authorize; mailgate touches idle grants to avoid this, so check that a worker instance is running.',
  '50173':
    'The grant was revoked because the user\'s password changed or their sessions were revoked (AADSTS50173). Press Re-authorize and sign in again.',
  '7000222':
    'The client secret has expired (AADSTS7000222). Create a new secret in the Entra admin center (App registrations → Certificates & secrets) and rotate it here with "Rotate client secret".',
  '7000215':
    'The client secret is wrong (AADSTS7000215): copy the secret\'s Value, not its Secret ID, from Certificates & secrets and rotate it here.',
  '54005':
    'The authorization code was already redeemed (AADSTS54005), usually by a double submit or a reloaded callback page. Press Authorize again.',
  '65001':
    'The user or an administrator has not consented to the app (AADSTS65001). Grant admin consent for SMTP.Send in the Entra admin center, then Authorize again.',
  '90002': 'The tenant was not found (AADSTS90002). Check the tenant ID or domain of the integration.',
  '700016': 'The application (client) ID was not found in this tenant (AADSTS700016). Check the client ID and tenant.',
  '50020': 'The account is not in the integration\'s tenant (AADSTS50020). Sign in with an account of that tenant or use the right tenant ID.',
};

export function diagnoseOAuthError(provider: OAuthProviderKind, error: string | undefined, description: string | undefined, options: { googleInTesting?: boolean } = {}): OAuthDiagnosis {
  const code = error ?? 'unknown';
  const aadsts = /AADSTS(\d+)/.exec(description ?? '')?.[1];
  if (aadsts && AADSTS_HINTS[aadsts]) return { code: `AADSTS${aadsts}`, hint: AADSTS_HINTS[aadsts] };
  switch (code) {
    case 'invalid_grant':
      if (provider === 'google') {
        return {
          code,
          hint: options.googleInTesting
            ? 'Google rejected the refresh token. Apps whose OAuth consent screen is in "Testing" get refresh tokens that expire after 7 days: publish the app (Google Cloud console → OAuth consent screen → Publish app), then press Re-authorize.'
            : 'Google rejected the refresh token: the user revoked access (myaccount.google.com/permissions), changed their password, or the token was unused for 6 months. If the consent screen is still in "Testing", tokens expire after 7 days. Press Re-authorize.',
        };
      }
      return { code, hint: 'The provider rejected the refresh token (revoked, expired or reused). Press Re-authorize to connect the mailbox again.' };
    case 'invalid_client':
    case 'unauthorized_client':
      return { code, hint: 'The provider rejected the client ID or secret. Check the client ID, and rotate the client secret if it expired or was regenerated.' };
    case 'egress_denied':
      return { code, hint: 'mailgate refused to connect to this endpoint: its address is on a network that admin-entered endpoints may not reach. Correct the issuer or endpoints, or have the operator list the host in MAILGATE_EGRESS_ALLOW.' };
    case 'access_denied':
      return { code, hint: 'Access was denied at the provider (the user pressed Cancel or an administrator blocks the app). Press Authorize to try again.' };
    case 'timeout':
    case 'network':
    case 'http_error':
    case 'temporarily_unavailable':
    case 'server_error':
      return { code, hint: 'The provider is not answering right now. mailgate retries with backoff; queued mail waits and is delivered once the provider is back.' };
    case 'invalid_scope':
      return {
        code,
        hint:
          provider === 'microsoft'
            ? 'The scopes were refused. Microsoft SMTP needs https://outlook.office.com/SMTP.Send and offline_access, and the API permission must be added to the app registration.'
            : 'The scopes were refused. Check the integration\'s scopes and the scopes enabled for the app at the provider.',
      };
    default:
      return { code, hint: description ? `The provider said: ${description.slice(0, 300)}` : 'The provider refused the request.' };
  }
}
