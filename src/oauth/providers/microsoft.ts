import type { ErrorDetail } from '../../errors.js';
import type { OAuthProvider, ProviderSettings } from './types.js';

/**
 * Microsoft Entra ID: an OpenID provider per tenant, `${authority}/${tenant}/v2.0`. The authority comes from
 * the environment, so tests and sovereign clouds can point it elsewhere.
 */

/**
 * The multi-tenant aliases publish an issuer template (`{tenantid}`) instead of a real issuer, so the ID
 * token's issuer cannot be checked strictly against discovery. mailgate asks for the tenant itself.
 */
export const MICROSOFT_MULTI_TENANT_ALIASES = ['common', 'organizations', 'consumers'] as const;

export const MICROSOFT_TENANT_EXPLANATION =
  'Enter your directory (tenant) ID or a verified domain such as contoso.onmicrosoft.com. ' +
  'The aliases common, organizations and consumers are refused: they publish an issuer template instead of an issuer, ' +
  'so the ID token cannot be checked against the tenant that signed it, and single-tenant apps cannot use them at all.';

/** Microsoft puts AADSTS codes in `error_description`; each names its own remedy. */
export const AADSTS_HINTS: Record<string, string> = {
  '700082':
    'The refresh token expired after being unused for too long (AADSTS700082). Press Re-authorize; mailgate touches idle grants to avoid this, so check that a worker instance is running.',
  '50173':
    "The grant was revoked because the user's password changed or their sessions were revoked (AADSTS50173). Press Re-authorize and sign in again.",
  '7000222':
    'The client secret has expired (AADSTS7000222). Create a new secret in the Entra admin center (App registrations → Certificates & secrets) and rotate it here with "Rotate client secret".',
  '7000215':
    "The client secret is wrong (AADSTS7000215): copy the secret's Value, not its Secret ID, from Certificates & secrets and rotate it here.",
  '54005':
    'The authorization code was already redeemed (AADSTS54005), usually by a double submit or a reloaded callback page. Press Authorize again.',
  '65001':
    'The user or an administrator has not consented to the app (AADSTS65001). Grant admin consent for SMTP.Send in the Entra admin center, then Authorize again.',
  '90002': 'The tenant was not found (AADSTS90002). Check the tenant ID or domain of the integration.',
  '700016': 'The application (client) ID was not found in this tenant (AADSTS700016). Check the client ID and tenant.',
  '50020':
    "The account is not in the integration's tenant (AADSTS50020). Sign in with an account of that tenant or use the right tenant ID.",
};

/** The global cloud's Graph, used when an integration names none (sovereign clouds override it). */
export const MICROSOFT_GRAPH_DEFAULT = 'https://graph.microsoft.com';

/** Exchange Online's resource for app-only SMTP, per cloud (by the authority's host); the global one otherwise. */
const SMTP_RESOURCE_BY_AUTHORITY: Record<string, string> = {
  'login.microsoftonline.us': 'https://outlook.office365.us',
  'login.partner.microsoftonline.cn': 'https://partner.outlook.cn',
  'login.chinacloudapi.cn': 'https://partner.outlook.cn',
};
const SMTP_RESOURCE_DEFAULT = 'https://outlook.office365.com';

const hostOf = (url: string | null | undefined) => {
  try {
    return url ? new URL(url).host : '';
  } catch {
    return '';
  }
};

/** `.default` asks for every application permission granted to the app on that resource. */
const APP_ONLY_SCOPE_BY_PROTOCOL: Record<string, (s: ProviderSettings) => string> = {
  graph: (s) => `${new URL(s.graphBaseUrl ?? MICROSOFT_GRAPH_DEFAULT).origin}/.default`,
};
const smtpAppOnlyScope = (s: ProviderSettings) =>
  `${SMTP_RESOURCE_BY_AUTHORITY[hostOf(s.authority)] ?? SMTP_RESOURCE_DEFAULT}/.default`;

function checkCloudUrl(field: 'authority' | 'graphBaseUrl', value: string, allowInsecure: boolean): ErrorDetail[] {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return [{ field, message: 'not a URL' }];
  }
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && allowInsecure))
    return [{ field, message: 'expected an https:// URL' }];
  if (url.username || url.password || url.search || url.hash || url.pathname.replace(/\/+$/, '') !== '')
    return [{ field, message: 'expected only a scheme and host, e.g. https://login.microsoftonline.us' }];
  return [];
}

export const microsoft: OAuthProvider = {
  kind: 'microsoft',
  defaultScopes: ['https://outlook.office.com/SMTP.Send', 'offline_access'],
  authorizationExtras: { prompt: 'consent' },
  ownFields: {
    tenant: () => 'only Microsoft integrations have a tenant',
    authority: () => 'only Microsoft integrations have an authority',
    graphBaseUrl: () => 'only Microsoft integrations have a Graph base URL',
  },
  adminEnteredEndpoints: false,
  revocationNote:
    "Microsoft has no token revocation endpoint. Disconnect deletes the tokens from mailgate; to cut access at Microsoft too, remove the app's consent: the user at https://myapps.microsoft.com (Manage your applications), or an administrator in the Entra admin center under Enterprise applications → the app → Permissions (or revoke the user's sessions).",
  issuer: (config, settings) =>
    `${settings.authority ?? config.MAILGATE_MICROSOFT_AUTHORITY}/${encodeURIComponent(settings.tenant ?? '')}/v2.0`,
  validate(settings, options) {
    const details: ErrorDetail[] = [];
    if (settings.authority) details.push(...checkCloudUrl('authority', settings.authority, options.allowInsecure));
    if (settings.graphBaseUrl)
      details.push(...checkCloudUrl('graphBaseUrl', settings.graphBaseUrl, options.allowInsecure));
    const tenant = settings.tenant?.trim();
    if (!tenant) details.push({ field: 'tenant', message: `required for Microsoft. ${MICROSOFT_TENANT_EXPLANATION}` });
    else if ((MICROSOFT_MULTI_TENANT_ALIASES as readonly string[]).includes(tenant.toLowerCase()))
      details.push({ field: 'tenant', message: `"${tenant}" is refused. ${MICROSOFT_TENANT_EXPLANATION}` });
    else if (!/^[A-Za-z0-9.-]{1,253}$/.test(tenant))
      details.push({ field: 'tenant', message: 'expected a tenant ID (GUID) or a domain name' });
    return details;
  },
  fields: (settings) => ({
    tenant: settings.tenant?.trim() ?? null,
    authority: settings.authority ? new URL(settings.authority).origin : null,
    graphBaseUrl: settings.graphBaseUrl ? new URL(settings.graphBaseUrl).origin : null,
  }),
  appOnly: {
    grantType: 'client_credentials',
    scope: (protocol, settings) => (APP_ONLY_SCOPE_BY_PROTOCOL[protocol ?? ''] ?? smtpAppOnlyScope)(settings),
  },
  diagnose(error, description) {
    const aadsts = /AADSTS(\d+)/.exec(description ?? '')?.[1];
    if (aadsts && AADSTS_HINTS[aadsts]) return { code: `AADSTS${aadsts}`, hint: AADSTS_HINTS[aadsts] };
    if (error === 'invalid_scope') {
      return {
        code: error,
        hint: 'The scopes were refused. Microsoft SMTP needs https://outlook.office.com/SMTP.Send and offline_access, and the API permission must be added to the app registration.',
      };
    }
    return undefined;
  },
  // Work accounts without a mail attribute still sign in with their address as user name.
  mailboxFromClaims: (claims) => (claims.preferredUsername?.includes('@') ? claims.preferredUsername : undefined),
};
