/**
 * Basic or XOAUTH2: which credentials a server's connection uses. `pickSmtpAuth` is pure; the transport
 * (src/mail/transport.ts) turns its answer into nodemailer options. For OAuth 2.0 nodemailer gets tokens
 * only through `provisionCallback`, which asks an AccessTokenSource (the token service) — nodemailer never
 * refreshes on its own, because its refresher would drop rotated refresh tokens.
 */

/** The grant an OAuth 2.0 authorization produced for a server (owned by the token service). */
export interface OAuthGrant {
  grantId: string;
  /** Mailbox address read from the ID token at authorization. */
  mailbox: string;
  /** `active`, or a state that needs an admin (e.g. `needs_reauth`). */
  status: string;
  /** A cached access token, if the token service has one at hand; nodemailer asks again when it expires. */
  accessToken?: string;
  /** Expiry of accessToken in ms since epoch. */
  expiresAt?: number;
}

/** Implemented by the token service: the single refresher of access tokens. */
export interface AccessTokenSource {
  /** A valid access token for the grant; `force` asks for a refresh even when the cached one looks valid. */
  getAccessToken(grantId: string, options: { force: boolean }): Promise<{ accessToken: string; expiresAt: number }>;
}

/** Implemented by the OAuth area: which grant a server authenticates with. */
export interface GrantSource {
  grantForServer(serverId: string): Promise<OAuthGrant | null>;
}

/** What pickSmtpAuth needs of a server: its auth settings with the password already opened. */
export interface AuthSettings {
  authMethod: 'none' | 'basic' | 'oauth2';
  username?: string | null;
  /** Plaintext password (opened from its sealed form by the servers service). */
  password?: string | null;
}

export type SmtpAuth =
  | { type: 'none' }
  | { type: 'basic'; user: string; pass: string }
  | { type: 'OAuth2'; user: string; grantId: string; accessToken?: string; expires?: number };

export type SmtpAuthProblem =
  | { problem: 'missing_username'; message: string }
  | { problem: 'missing_password'; message: string }
  | { problem: 'not_authorized'; message: string }
  | { problem: 'needs_reauth'; message: string };

/**
 * none → no AUTH; basic → {user, pass}; oauth2 → XOAUTH2 for `username`, or the authorized mailbox when
 * no username is set. Returns a problem (never throws) when the settings cannot authenticate.
 */
export function pickSmtpAuth(server: AuthSettings, grant: OAuthGrant | null): SmtpAuth | SmtpAuthProblem {
  switch (server.authMethod) {
    case 'none':
      return { type: 'none' };
    case 'basic': {
      if (!server.username) return { problem: 'missing_username', message: 'Basic authentication needs a user name.' };
      if (!server.password) return { problem: 'missing_password', message: 'Basic authentication needs a password.' };
      return { type: 'basic', user: server.username, pass: server.password };
    }
    case 'oauth2': {
      if (!grant)
        return {
          problem: 'not_authorized',
          message: 'This server uses OAuth 2.0 but no mailbox is authorized yet: press Authorize.',
        };
      if (grant.status !== 'active') {
        return {
          problem: 'needs_reauth',
          message: 'The OAuth 2.0 authorization of this server is no longer valid: press Re-authorize.',
        };
      }
      const user = server.username || grant.mailbox;
      const auth: SmtpAuth = { type: 'OAuth2', user, grantId: grant.grantId };
      if (grant.accessToken && grant.expiresAt !== undefined) {
        auth.accessToken = grant.accessToken;
        auth.expires = grant.expiresAt;
      }
      return auth;
    }
  }
}

export function isAuthProblem(value: SmtpAuth | SmtpAuthProblem): value is SmtpAuthProblem {
  return 'problem' in value;
}
