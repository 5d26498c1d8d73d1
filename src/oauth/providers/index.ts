import type { Config } from '../../config.js';
import type { ErrorDetail } from '../../errors.js';
import { custom } from './custom.js';
import { google } from './google.js';
import { microsoft, MICROSOFT_GRAPH_DEFAULT } from './microsoft.js';
import type { OAuthProvider, ProviderFieldName, ProviderFields, ProviderSettings } from './types.js';

/** The registry of providers: adding one means adding its module here, nothing else. */

const PROVIDERS = { google, microsoft, custom } as const satisfies Record<string, OAuthProvider>;

export type OAuthProviderKind = keyof typeof PROVIDERS;

export const PROVIDER_KINDS = Object.keys(PROVIDERS) as [OAuthProviderKind, ...OAuthProviderKind[]];

export function providerOf(kind: OAuthProviderKind): OAuthProvider {
  return PROVIDERS[kind];
}

/** Scopes every integration asks for, so the ID token names the mailbox. */
export const IDENTITY_SCOPES = ['openid', 'email'] as const;

/** The scope list sent in the authorization request: identity scopes first, then the configured ones, no duplicates. */
export function requestedScopes(scopes: readonly string[]): string[] {
  return [...new Set([...IDENTITY_SCOPES, ...scopes])];
}

export function defaultScopes(kind: OAuthProviderKind): string[] {
  return [...PROVIDERS[kind].defaultScopes];
}

/** The issuer to discover, or undefined for a custom integration with explicit endpoints. */
export function issuerFor(
  config: Config,
  settings: ProviderSettings & { provider: OAuthProviderKind },
): string | undefined {
  return PROVIDERS[settings.provider].issuer(config, settings);
}

export function authorizationExtras(kind: OAuthProviderKind): Record<string, string> {
  return { ...PROVIDERS[kind].authorizationExtras };
}

/** The app-only grant type a provider offers (client_credentials for Microsoft, service_account for Google), if any. */
export function appOnlyGrantTypeOf(kind: OAuthProviderKind): 'client_credentials' | 'service_account' | undefined {
  return PROVIDERS[kind].appOnly?.grantType;
}

/** The scope an app-only token needs for a server's protocol; unknown protocols are sent over SMTP. */
export function appOnlyScope(
  settings: ProviderSettings & { provider: OAuthProviderKind },
  protocol: string | undefined,
): string | undefined {
  return PROVIDERS[settings.provider].appOnly?.scope(protocol, settings);
}

/** The Graph base URL of an integration: its own (a sovereign cloud), else the deployment's default. */
export function graphBaseUrlFor(
  settings: { graphBaseUrl?: string | null | undefined },
  deploymentDefault: string = MICROSOFT_GRAPH_DEFAULT,
): string {
  return settings.graphBaseUrl ?? deploymentDefault;
}

/** What to do at the provider after Disconnect when it cannot be told, or null. */
export function revocationNote(kind: OAuthProviderKind): string | null {
  return PROVIDERS[kind].revocationNote;
}

/** The provider's own checks, then every field of another provider that these settings set. */
export function validateProviderSettings(
  kind: OAuthProviderKind,
  settings: ProviderSettings,
  options: { allowInsecure: boolean },
): ErrorDetail[] {
  const own: OAuthProvider = PROVIDERS[kind];
  const details = own.validate(settings, options);
  for (const other of Object.values<OAuthProvider>(PROVIDERS)) {
    if (other === own) continue;
    for (const [field, message] of Object.entries(other.ownFields) as [ProviderFieldName, (kind: string) => string][]) {
      if (settings[field] && !(field in own.ownFields)) details.push({ field, message: message(kind) });
    }
  }
  return details;
}

/** Every provider-specific field to store: the provider's own, the others empty. */
export function providerFields(kind: OAuthProviderKind, settings: ProviderSettings): ProviderFields {
  return {
    tenant: null,
    issuer: null,
    authorizationEndpoint: null,
    tokenEndpoint: null,
    revocationEndpoint: null,
    googleInTesting: false,
    authority: null,
    graphBaseUrl: null,
    ...PROVIDERS[kind].fields(settings),
  };
}

export { MICROSOFT_GRAPH_DEFAULT, MICROSOFT_TENANT_EXPLANATION } from './microsoft.js';
export type {
  IdentityClaims,
  OAuthDiagnosis,
  OAuthProvider,
  ProviderFields,
  ProviderSettings,
  ProviderWarning,
} from './types.js';
