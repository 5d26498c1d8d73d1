import type { Config } from '../config.js';

/**
 * Provider presets. Google and Microsoft are ordinary OpenID providers found by discovery; only their
 * issuers, default scopes and authorization-request quirks differ. Issuers come from the environment so
 * tests (and sovereign clouds) can point them elsewhere.
 */

export type OAuthProviderKind = 'google' | 'microsoft' | 'custom';

/** Scopes every integration asks for, so the ID token names the mailbox. */
export const IDENTITY_SCOPES = ['openid', 'email'] as const;

export const DEFAULT_MAIL_SCOPES: Record<OAuthProviderKind, readonly string[]> = {
  google: ['https://mail.google.com/'],
  microsoft: ['https://outlook.office.com/SMTP.Send', 'offline_access'],
  custom: [],
};

/**
 * Microsoft's multi-tenant aliases publish an issuer template (`{tenantid}`) instead of a real issuer, so
 * the ID token's issuer cannot be checked strictly against discovery. mailgate asks for the tenant itself.
 */
export const MICROSOFT_MULTI_TENANT_ALIASES = ['common', 'organizations', 'consumers'] as const;

export const MICROSOFT_TENANT_EXPLANATION =
  'Enter your directory (tenant) ID or a verified domain such as contoso.onmicrosoft.com. ' +
  'The aliases common, organizations and consumers are refused: they publish an issuer template instead of an issuer, ' +
  'so the ID token cannot be checked against the tenant that signed it, and single-tenant apps cannot use them at all.';

/** The scope list sent in the authorization request: identity scopes first, then the configured ones, no duplicates. */
export function requestedScopes(scopes: readonly string[]): string[] {
  return [...new Set([...IDENTITY_SCOPES, ...scopes])];
}

export function defaultScopes(kind: OAuthProviderKind): string[] {
  return [...DEFAULT_MAIL_SCOPES[kind]];
}

export interface IssuerSettings {
  provider: OAuthProviderKind;
  tenant?: string | undefined;
  issuer?: string | undefined;
}

/** The issuer to discover, or undefined for a custom integration with explicit endpoints. */
export function issuerFor(config: Pick<Config, 'MAILGATE_GOOGLE_ISSUER' | 'MAILGATE_MICROSOFT_AUTHORITY'>, settings: IssuerSettings): string | undefined {
  switch (settings.provider) {
    case 'google':
      return config.MAILGATE_GOOGLE_ISSUER.replace(/\/+$/, '');
    case 'microsoft':
      return `${config.MAILGATE_MICROSOFT_AUTHORITY}/${encodeURIComponent(settings.tenant ?? '')}/v2.0`;
    case 'custom':
      return settings.issuer;
  }
}

/** Extra authorization request parameters: always a consent prompt (so a refresh token is issued), Google also offline access. */
export function authorizationExtras(kind: OAuthProviderKind): Record<string, string> {
  return kind === 'google' ? { prompt: 'consent', access_type: 'offline' } : { prompt: 'consent' };
}

/** Whether the provider has an RFC 7009 revocation endpoint worth calling on Disconnect. */
export function revocationNote(kind: OAuthProviderKind): string | null {
  if (kind !== 'microsoft') return null;
  return 'Microsoft has no token revocation endpoint. Disconnect deletes the tokens from mailgate; to cut access at Microsoft too, remove the app\'s consent: the user at https://myapps.microsoft.com (Manage your applications), or an administrator in the Entra admin center under Enterprise applications → the app → Permissions (or revoke the user\'s sessions).';
}
