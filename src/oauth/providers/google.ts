import type { OAuthProvider } from './types.js';

/** Google: an OpenID provider found by discovery; refresh tokens need offline access. */

const TESTING_TOKEN_LIFETIME = '7 days';

export const google: OAuthProvider = {
  kind: 'google',
  defaultScopes: ['https://mail.google.com/'],
  authorizationExtras: { prompt: 'consent', access_type: 'offline' },
  ownFields: { googleInTesting: () => 'only applies to Google integrations' },
  adminEnteredEndpoints: false,
  revocationNote: null,
  issuer: (config) => config.MAILGATE_GOOGLE_ISSUER.replace(/\/+$/, ''),
  validate: () => [],
  // Domain-wide delegation grants scopes to the service account; these are the ones each transport needs.
  appOnly: {
    grantType: 'service_account',
    scope: (protocol) =>
      protocol === 'gmail_api' ? 'https://www.googleapis.com/auth/gmail.send' : 'https://mail.google.com/',
  },
  fields: (settings) => ({ googleInTesting: settings.googleInTesting === true }),
  diagnose(error, _description, settings) {
    if (error !== 'invalid_grant') return undefined;
    return {
      code: error,
      hint: settings.googleInTesting
        ? `Google rejected the refresh token. Apps whose OAuth consent screen is in "Testing" get refresh tokens that expire after ${TESTING_TOKEN_LIFETIME}: publish the app (Google Cloud console → OAuth consent screen → Publish app), then press Re-authorize.`
        : `Google rejected the refresh token: the user revoked access (myaccount.google.com/permissions), changed their password, or the token was unused for 6 months. If the consent screen is still in "Testing", tokens expire after ${TESTING_TOKEN_LIFETIME}. Press Re-authorize.`,
    };
  },
  warnings(settings) {
    if (!settings.googleInTesting) return [];
    return [
      {
        kind: 'google_in_testing',
        message: `"${settings.name ?? ''}" is a Google app in Testing: its refresh tokens expire after ${TESTING_TOKEN_LIFETIME}. Publish the app's consent screen.`,
      },
    ];
  },
};
