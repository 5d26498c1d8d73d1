import type { AccessTokenSource, SmtpAuth } from '../auth.js';
import { credentialsFailure, tokenProblemOf } from '../transport-failure.js';
import { HAND_OVER, WirePool } from './pool.js';
import { openSession, type SessionOptions, type WireAuth } from './session.js';

/**
 * The narrow SMTP client of the delivery hot path: raw messages over pipelined, pooled sessions. nodemailer
 * (src/mail/transport.ts) still does everything else: composed messages, Test connection, protocol logging and
 * the servers this client hands back.
 */

export { HAND_OVER, WirePool } from './pool.js';
export { normalizeEnvelope } from './envelope.js';
export type { TransactionResult, WireEnvelope } from './connection.js';

/** A session's options, with the server's credentials as they are (the token source turns OAuth into XOAUTH2). */
export interface WirePoolSettings extends Omit<SessionOptions, 'auth'> {
  auth: SmtpAuth;
  tokens?: AccessTokenSource | undefined;
  maxConnections: number;
}

/**
 * Every session asks the token service (the single authority on expiry, with its own clock and cache); only
 * without one does the grant's token serve, while it is valid, as it would for nodemailer.
 */
function wireAuth(auth: SmtpAuth, tokens: AccessTokenSource | undefined): WireAuth {
  if (auth.type === 'none') return auth;
  if (auth.type === 'basic') return auth;
  const { grantId, accessToken, expires } = auth;
  return {
    type: 'xoauth2',
    user: auth.user,
    async token(force) {
      if (!tokens) {
        if (!force && accessToken && (!expires || expires > Date.now())) return accessToken;
        throw credentialsFailure('OAuth 2.0 is not configured in this mailgate', 'token_needs_reauth');
      }
      try {
        return (await tokens.getAccessToken(grantId, { force })).accessToken;
      } catch (err) {
        throw credentialsFailure(`no access token: ${(err as Error).message ?? String(err)}`, tokenProblemOf(err), err);
      }
    },
  };
}

export function createWirePool(settings: WirePoolSettings): WirePool {
  const { auth, tokens, maxConnections, ...session } = settings;
  const sessionAuth = wireAuth(auth, tokens);
  return new WirePool({ maxConnections, open: () => openSession({ ...session, auth: sessionAuth }) });
}

export const isHandedOver = (value: unknown): value is typeof HAND_OVER => value === HAND_OVER;
