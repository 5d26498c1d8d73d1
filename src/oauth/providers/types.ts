import type { Config } from '../../config.js';
import type { ErrorDetail } from '../../errors.js';

/**
 * What mailgate knows about one kind of identity provider. Each provider is one module under
 * oauth/providers/ and registers in index.ts; nothing else branches on the provider's name.
 */

/** An OAuth error turned into what the admin should do. */
export interface OAuthDiagnosis {
  code: string;
  hint: string;
}

/** The integration settings a provider reads (the stored integration, or the form being checked). */
export interface ProviderSettings {
  name?: string | undefined;
  tenant?: string | null | undefined;
  scopes?: readonly string[] | undefined;
  issuer?: string | null | undefined;
  authorizationEndpoint?: string | null | undefined;
  tokenEndpoint?: string | null | undefined;
  revocationEndpoint?: string | null | undefined;
  googleInTesting?: boolean | undefined;
  /** Microsoft only: sovereign clouds (login.microsoftonline.us, login.chinacloudapi.cn); the environment's by default. */
  authority?: string | null | undefined;
  /** Microsoft only: the Graph base URL of that cloud (graph.microsoft.us, microsoftgraph.chinacloudapi.cn). */
  graphBaseUrl?: string | null | undefined;
}

/** The provider-specific fields an integration stores; the ones a provider does not set stay empty. */
export interface ProviderFields {
  tenant: string | null;
  issuer: string | null;
  authorizationEndpoint: string | null;
  tokenEndpoint: string | null;
  revocationEndpoint: string | null;
  googleInTesting: boolean;
  authority: string | null;
  graphBaseUrl: string | null;
}

export type ProviderFieldName = keyof ProviderFields;

/** Verified ID token claims, as the OAuth client hands them over. */
export interface IdentityClaims {
  email?: string | undefined;
  preferredUsername?: string | undefined;
}

export interface ProviderWarning {
  kind: string;
  message: string;
}

export interface OAuthProvider {
  readonly kind: string;
  /** Scopes asked for when the integration names none (identity scopes are always added). */
  readonly defaultScopes: readonly string[];
  /** Extra authorization request parameters (a consent prompt, so a refresh token is issued). */
  readonly authorizationExtras: Readonly<Record<string, string>>;
  /**
   * The settings fields only this provider uses, each with the message shown when an integration of
   * another provider sets it (`other` is that provider's kind).
   */
  readonly ownFields: Partial<Record<ProviderFieldName, (other: string) => string>>;
  /** True when the endpoints are typed in by an admin, so requests pass the egress policy. */
  readonly adminEnteredEndpoints: boolean;
  /** Said on Disconnect when the provider cannot be told to revoke, with what to do instead. */
  readonly revocationNote: string | null;
  /** The issuer to discover, or undefined when the integration names explicit endpoints. */
  issuer(config: Config, settings: ProviderSettings): string | undefined;
  /** Checks the schema cannot express, each naming its field. */
  validate(settings: ProviderSettings, options: { allowInsecure: boolean }): ErrorDetail[];
  /** The provider-specific fields to store for these settings. */
  fields(settings: ProviderSettings): Partial<ProviderFields>;
  /** A provider-specific reading of an OAuth error; undefined falls back to the common hints. */
  diagnose?(
    error: string | undefined,
    description: string | undefined,
    settings: ProviderSettings,
  ): OAuthDiagnosis | undefined;
  /** Problems of this integration the admin should hear about before mail stops. */
  warnings?(settings: ProviderSettings): ProviderWarning[];
  /**
   * App-only access (no user consent): the grant type this provider offers for it, and the scope a token
   * needs to send over a server's protocol (`smtp`, `smtps`, `graph`, `gmail_api`; unknown ones count as SMTP).
   */
  readonly appOnly?: {
    grantType: 'client_credentials' | 'service_account';
    scope(protocol: string | undefined, settings: ProviderSettings): string;
  };
  /** The mailbox when the ID token carries no `email` claim. */
  mailboxFromClaims?(claims: IdentityClaims): string | undefined;
}
