import type { Keyring } from '../crypto/keyring.js';
import { OAuthProtocolError, type OAuthClient, type TokenSet } from '../oauth/client.js';
import type { Doc } from '../store/store.js';
import { openToken, type GrantRecord } from './grants.js';

/**
 * The one token request of a refresh: a refresh_token grant for an authorized mailbox, or for an app-only
 * server a new client credentials / JWT bearer request (there is no refresh token to spend).
 */
export function requestTokens(keyring: Keyring, doc: Doc<GrantRecord>, client: OAuthClient): Promise<TokenSet> {
  const g = doc.value;
  if (g.appOnly) return client.appOnlyToken({ scope: g.appOnly.scope, subject: g.mailbox });
  return client.refresh(openToken(keyring, doc.id, 'refreshToken', g.tokens.refreshToken!));
}

/**
 * An app-only grant has no user who could re-authorize: a refused grant (Google's invalid_grant for a mailbox
 * outside the delegation, unauthorized_client without domain-wide delegation) is the integration's setup, so it
 * counts as invalid_client — the integration is flagged, mail waits and retries — never as needs_reauth.
 */
export function appOnlyFailure(err: unknown): unknown {
  if (err instanceof OAuthProtocolError && err.kind === 'invalid_grant')
    return new OAuthProtocolError('invalid_client', err.oauthError, err.description, {
      cause: err,
      status: err.httpStatus,
    });
  return err;
}
