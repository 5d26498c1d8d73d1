import type { ErrorDetail } from '../../errors.js';
import type { OAuthProvider, ProviderFieldName } from './types.js';

/** Any other OAuth 2.0 / OpenID provider: an issuer to discover, or explicit endpoints typed in by an admin. */

const URL_FIELDS = [
  'issuer',
  'authorizationEndpoint',
  'tokenEndpoint',
  'revocationEndpoint',
] as const satisfies readonly ProviderFieldName[];

const presetUsesItsOwn = (field: string) => (other: string) =>
  `only custom integrations set ${field}; the ${other} preset uses its own`;

export const custom: OAuthProvider = {
  kind: 'custom',
  defaultScopes: [],
  authorizationExtras: { prompt: 'consent' },
  ownFields: Object.fromEntries(URL_FIELDS.map((f) => [f, presetUsesItsOwn(f)])),
  adminEnteredEndpoints: true,
  revocationNote: null,
  issuer: (_config, settings) => settings.issuer ?? undefined,
  validate(settings, options) {
    const details: ErrorDetail[] = [];
    if (!settings.issuer && !(settings.authorizationEndpoint && settings.tokenEndpoint)) {
      details.push({
        field: 'issuer',
        message:
          'give an issuer (discovered through .well-known/openid-configuration) or both authorizationEndpoint and tokenEndpoint',
      });
    }
    if (settings.issuer && (settings.authorizationEndpoint || settings.tokenEndpoint)) {
      details.push({ field: 'issuer', message: 'give either an issuer or explicit endpoints, not both' });
    }
    for (const f of URL_FIELDS) {
      const value = settings[f];
      if (!value) continue;
      let url: URL;
      try {
        url = new URL(value);
      } catch {
        details.push({ field: f, message: 'not a URL' });
        continue;
      }
      if (url.protocol === 'http:' && !options.allowInsecure) {
        details.push({
          field: f,
          message:
            'plain http is refused; use https (http is allowed only with MAILGATE_ALLOW_INSECURE_OAUTH=true, for local test providers)',
        });
      } else if (url.protocol !== 'https:' && url.protocol !== 'http:') {
        details.push({ field: f, message: 'expected an https:// URL' });
      }
      if (url.username || url.password || url.hash)
        details.push({ field: f, message: 'must not contain credentials or a fragment' });
    }
    return details;
  },
  fields: (settings) => ({
    issuer: settings.issuer?.replace(/\/+$/, '') ?? null,
    authorizationEndpoint: settings.authorizationEndpoint ?? null,
    tokenEndpoint: settings.tokenEndpoint ?? null,
    revocationEndpoint: settings.revocationEndpoint ?? null,
  }),
};
