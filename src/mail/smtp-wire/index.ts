import type { ConnectionOptions } from 'node:tls';
import type { EgressGuard } from '../../net/connect.js';
import type { AccessTokenSource, SmtpAuth } from '../auth.js';
import { credentialsFailure, tokenProblemOf } from '../transport-failure.js';
import { HAND_OVER, WirePool } from './pool.js';
import { openSession, type WireAuth } from './session.js';

/**
 * The narrow SMTP client of the delivery hot path: raw messages over pipelined, pooled sessions. nodemailer
 * (src/mail/transport.ts) still does everything else: composed messages, Test connection, protocol logging and
 * the servers this client hands back.
 */

export { HAND_OVER, WirePool } from './pool.js';
export type { TransactionResult, WireEnvelope } from './connection.js';

export interface WirePoolSettings {
  host: string;
  port: number;
  secure: boolean;
  requireTLS: boolean;
  name?: string | undefined;
  timeoutMs: number;
  tls: ConnectionOptions;
  egress?: EgressGuard | undefined;
  auth: SmtpAuth;
  tokens?: AccessTokenSource | undefined;
  maxConnections: number;
}

/** Tokens as nodemailer's XOAuth2 gets them: the cached one while it is valid, the token source otherwise. */
function wireAuth(auth: SmtpAuth, tokens: AccessTokenSource | undefined): WireAuth {
  if (auth.type === 'none') return auth;
  if (auth.type === 'basic') return auth;
  const grantId = auth.grantId;
  let cached = auth.accessToken;
  let expires = auth.expires;
  return {
    type: 'xoauth2',
    user: auth.user,
    async token(force) {
      if (!force && cached && (!expires || expires > Date.now())) return cached;
      if (!tokens) throw credentialsFailure('OAuth 2.0 is not configured in this mailgate', 'token_needs_reauth');
      try {
        const t = await tokens.getAccessToken(grantId, { force });
        cached = t.accessToken;
        expires = t.expiresAt;
        return t.accessToken;
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
