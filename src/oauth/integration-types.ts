import type { CredentialInput, GrantType, StoredCredentials } from './integration-credentials.js';
import type { OAuthProviderKind } from './providers/index.js';

/** The shapes of an OAuth 2.0 integration: as stored, as shown, as typed in. */

export const INTEGRATIONS = 'oauth_integrations';

export interface IntegrationRecord extends StoredCredentials {
  name: string;
  provider: OAuthProviderKind;
  clientId: string;
  /** Sealed with {collection: 'oauth_integrations', id, field: 'clientSecret'}; null with another credential. */
  clientSecret: string | null;
  tenant: string | null;
  /** Microsoft sovereign clouds: login authority and Graph base URL (null: the global defaults). */
  authority: string | null;
  graphBaseUrl: string | null;
  scopes: string[];
  issuer: string | null;
  authorizationEndpoint: string | null;
  tokenEndpoint: string | null;
  revocationEndpoint: string | null;
  /** ISO date (YYYY-MM-DD) after which the client secret stops working, when known. */
  secretExpiresAt: string | null;
  /** Google app whose consent screen is in "Testing": refresh tokens die after 7 days. */
  googleInTesting: boolean;
  /** Set when the provider answered invalid_client; cleared by a successful token request or a secret change. */
  misconfigured: { at: number; code: string; hint: string } | null;
  createdAt: number;
  updatedAt: number;
  secretChangedAt: number;
}

/** What the API and pages show: never the secret. */
export interface IntegrationView extends Omit<
  IntegrationRecord,
  'clientSecret' | 'clientCertificate' | 'serviceAccountKey'
> {
  id: string;
  hasClientSecret: boolean;
  hasClientCertificate: boolean;
  hasServiceAccountKey: boolean;
  redirectUri: string;
  /** The issuer mailgate discovers (presets resolved), or null with explicit endpoints. */
  resolvedIssuer: string | null;
}

export interface IntegrationInput extends CredentialInput {
  name: string;
  provider: OAuthProviderKind;
  /** Not needed for a service account (its key file names it). */
  clientId?: string | undefined;
  grantType?: GrantType | undefined;
  tenant?: string | undefined;
  authority?: string | undefined;
  graphBaseUrl?: string | undefined;
  scopes?: string[] | undefined;
  issuer?: string | undefined;
  authorizationEndpoint?: string | undefined;
  tokenEndpoint?: string | undefined;
  revocationEndpoint?: string | undefined;
  secretExpiresAt?: string | null | undefined;
  googleInTesting?: boolean | undefined;
}
