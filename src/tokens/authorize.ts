import { createHash } from 'node:crypto';
import type { Actor, AuditRecorder } from '../admin/types.js';
import type { Clock } from '../clock.js';
import type { Keyring } from '../crypto/keyring.js';
import { AppError } from '../errors.js';
import type { Logger } from '../log.js';
import { findEgressDenial } from '../net/egress.js';
import { type Store, VersionConflictError } from '../store/store.js';
import { newAuthorizationSecrets, OAuthProtocolError } from '../oauth/client.js';
import { diagnoseOAuthError } from '../oauth/diagnose.js';
import { isAppOnly } from '../oauth/integration-credentials.js';
import type { IntegrationService } from '../oauth/integrations.js';
import { authorizationExtras, providerOf } from '../oauth/providers/index.js';
import { storeGrant } from './grant-store.js';
import type { TokenService } from './refresh.js';
import { AuthorizationFailure, scopesForServer, type ServerLookup } from './authorization-model.js';

export * from './authorization-model.js';

/**
 * The Authorize redirect (DESIGN.md flow 1). A transaction is kept server-side — integration, server,
 * PKCE verifier (sealed), nonce, expiry — under the hash of `state`, bound to the admin session that
 * started it, and deleted with a compare-and-set on first use so a replayed callback finds nothing.
 * The callback takes the integration from the transaction, never from the query.
 */

export const TRANSACTIONS = 'oauth_transactions';
export const TRANSACTION_TTL_MS = 10 * 60_000;

interface TransactionRecord {
  integrationId: string;
  serverId: string;
  codeVerifier: string;
  nonce: string;
  sessionId: string;
  userId: string;
  expiresAt: number;
}

/** The SMTP server as the authorize flow needs it. */
export interface AuthorizeDeps {
  store: Store;
  keyring: Keyring;
  log: Logger;
  audit: AuditRecorder;
  integrations: IntegrationService;
  tokens: TokenService;
  servers: ServerLookup;
  clock: Clock;
}

function transactionId(state: string): string {
  return createHash('sha256').update(state).digest('base64url');
}

export class AuthorizeService {
  constructor(private readonly deps: AuthorizeDeps) {}

  /**
   * The provider request for `serverId`: fresh state, nonce and PKCE secrets and the URL to send the browser
   * to. The caller keeps the transaction (the admin flow here, a reconnect link elsewhere).
   */
  async prepare(serverId: string): Promise<{
    serverId: string;
    integrationId: string;
    url: URL;
    secrets: Awaited<ReturnType<typeof newAuthorizationSecrets>>;
  }> {
    const server = await this.deps.servers.get(serverId);
    if (server.authMethod !== 'oauth2' || !server.oauthIntegrationId) {
      throw new AppError('bad_request', {
        message:
          'This server does not use OAuth 2.0: set its authentication to OAuth 2.0 and choose an integration first.',
      });
    }
    const integration = await this.deps.integrations.get(server.oauthIntegrationId);
    if (isAppOnly(integration.value)) {
      throw new AppError('bad_request', {
        message:
          'This server uses app-only credentials: there is nothing to authorize, mailgate obtains its tokens with the integration’s credentials for the mailbox named in the user name.',
      });
    }
    let client;
    try {
      client = await this.deps.integrations.client(integration.id);
    } catch (err) {
      const denied = findEgressDenial(err);
      if (denied) throw denied;
      const e = err instanceof OAuthProtocolError ? err : null;
      throw new AppError('provider_unavailable', {
        message: `The provider's configuration could not be read (${e?.description ?? 'discovery failed'}). Check the integration's issuer or tenant.`,
        expose: true,
        cause: err,
      });
    }
    const secrets = await newAuthorizationSecrets();
    const url = client.authorizationUrl({
      redirectUri: this.deps.integrations.redirectUri,
      scope: scopesForServer(server.protocol, integration.value.scopes, integration.value.graphBaseUrl).join(' '),
      state: secrets.state,
      nonce: secrets.nonce,
      codeChallenge: secrets.codeChallenge,
      extras: authorizationExtras(integration.value.provider),
    });
    return { serverId: server.id, integrationId: integration.id, url, secrets };
  }

  /** Starts an authorization for `serverId`; returns the provider URL to send the browser to. */
  async begin(params: {
    serverId: string;
    sessionId: string;
    actor: Actor;
  }): Promise<{ url: string; providerOrigin: string }> {
    const { serverId, integrationId, url, secrets } = await this.prepare(params.serverId);
    const id = transactionId(secrets.state);
    const record: TransactionRecord = {
      integrationId,
      serverId,
      codeVerifier: this.deps.keyring.seal(secrets.codeVerifier, {
        collection: TRANSACTIONS,
        id,
        field: 'codeVerifier',
      }),
      nonce: secrets.nonce,
      sessionId: params.sessionId,
      userId: params.actor.id,
      expiresAt: this.deps.clock.now() + TRANSACTION_TTL_MS,
    };
    await this.deps.store.put(TRANSACTIONS, id, record, { ifVersion: 0 });
    return { url: url.href, providerOrigin: url.origin };
  }

  /**
   * Completes the callback. `callbackUrl` is the full URL the browser came back to; the session must be
   * the one that started the transaction.
   */
  async complete(params: {
    callbackUrl: URL;
    sessionId: string;
    actor: Actor;
    ip?: string | undefined;
  }): Promise<{ serverId: string; mailbox: string }> {
    const query = params.callbackUrl.searchParams;
    const state = query.get('state');
    if (!state)
      throw new AuthorizationFailure(
        'missing_state',
        'The provider sent no state: this page was not reached through Authorize. Start again from the SMTP server page.',
      );
    const id = transactionId(state);
    const tx = await this.deps.store.get<TransactionRecord>(TRANSACTIONS, id);
    if (!tx)
      throw new AuthorizationFailure(
        'unknown_state',
        'This authorization is unknown or was already used (a reloaded or replayed callback). Start again with Authorize on the SMTP server page.',
      );
    const t = tx.value;
    if (t.sessionId !== params.sessionId || t.userId !== params.actor.id) {
      throw new AuthorizationFailure(
        'foreign_session',
        'This authorization was started in another browser session. Press Authorize again from your own session.',
        null,
      );
    }
    // Single use: whoever deletes it first (CAS on the version) completes it; everyone else is a replay.
    try {
      const deleted = await this.deps.store.delete(TRANSACTIONS, id, { ifVersion: tx.version });
      if (!deleted)
        throw new AuthorizationFailure(
          'unknown_state',
          'This authorization was already used. Start again with Authorize.',
        );
    } catch (err) {
      if (err instanceof VersionConflictError)
        throw new AuthorizationFailure(
          'unknown_state',
          'This authorization was already used. Start again with Authorize.',
        );
      throw err;
    }
    if (this.deps.clock.now() > t.expiresAt)
      throw new AuthorizationFailure(
        'expired',
        'This authorization expired (more than 10 minutes passed). Press Authorize again.',
        t.serverId,
      );
    const codeVerifier = this.deps.keyring.open(t.codeVerifier, {
      collection: TRANSACTIONS,
      id,
      field: 'codeVerifier',
    });
    return this.finish({
      integrationId: t.integrationId,
      serverId: t.serverId,
      nonce: t.nonce,
      state,
      codeVerifier,
      callbackUrl: params.callbackUrl,
      actor: params.actor,
      ip: params.ip,
    });
  }

  /**
   * The callback once a transaction was found, matched and consumed: provider errors, issuer, code exchange,
   * the mailbox from the ID token, then the grant. With `expectedMailbox` another mailbox is refused and
   * nothing is stored; `beforeStore` runs after every check and may still refuse (a link used meanwhile).
   */
  async finish(params: {
    integrationId: string;
    serverId: string;
    nonce: string;
    state: string;
    codeVerifier: string;
    callbackUrl: URL;
    actor: Actor;
    ip?: string | undefined;
    expectedMailbox?: string | null;
    beforeStore?: (mailbox: string) => Promise<void>;
    auditDetail?: Record<string, string>;
  }): Promise<{ serverId: string; mailbox: string }> {
    const t = params;
    const state = params.state;
    const codeVerifier = params.codeVerifier;
    const query = params.callbackUrl.searchParams;
    const integration = await this.deps.integrations.get(t.integrationId);
    const provider = integration.value.provider;
    const error = query.get('error');
    if (error) {
      const diagnosis = diagnoseOAuthError(integration.value, error, query.get('error_description') ?? undefined);
      await this.auditFailure(params, t, error);
      if (error === 'access_denied')
        throw new AuthorizationFailure(
          'access_denied',
          'Access was denied at the provider, so nothing was changed.',
          t.serverId,
          diagnosis.hint,
          { hintCode: diagnosis.code },
        );
      throw new AuthorizationFailure(
        'provider_error',
        `The provider reported an error (${error}).`,
        t.serverId,
        diagnosis.hint,
        { params: { error }, hintCode: diagnosis.code },
      );
    }
    const client = await this.deps.integrations.client(t.integrationId);
    const iss = query.get('iss');
    if (iss !== null && iss !== client.issuer) {
      await this.auditFailure(params, t, 'wrong_issuer');
      throw new AuthorizationFailure(
        'wrong_issuer',
        "The response claims to come from another issuer than the integration's; it was refused.",
        t.serverId,
      );
    }
    let tokens;
    try {
      tokens = await client.exchangeCode(params.callbackUrl, {
        codeVerifier,
        state,
        nonce: t.nonce,
        redirectUri: this.deps.integrations.redirectUri,
      });
    } catch (err) {
      if (!(err instanceof OAuthProtocolError)) throw err;
      const e = err;
      const diagnosis = diagnoseOAuthError(integration.value, e.oauthError, e.description);
      if (e.kind === 'invalid_client') await this.deps.integrations.markMisconfigured(t.integrationId, diagnosis);
      await this.auditFailure(params, t, e.oauthError ?? e.kind);
      const reason =
        e.oauthError === 'OAUTH_JSON_ATTRIBUTE_COMPARISON' || /issuer|"iss"/i.test(e.description ?? '')
          ? 'wrong_issuer'
          : 'exchange_failed';
      throw new AuthorizationFailure(
        reason,
        `The provider did not accept the authorization (${e.oauthError ?? e.kind}).`,
        t.serverId,
        diagnosis.hint,
        { params: { error: e.oauthError ?? e.kind }, hintCode: diagnosis.code },
      );
    }
    const claims = tokens.claims;
    // An unverified address may belong to someone else (any user can type it at some providers): refuse it
    // rather than send as that mailbox. Providers that do not send the claim verify addresses themselves.
    if (claims?.email !== undefined && claims.emailVerified === false) {
      await this.auditFailure(params, t, 'email_unverified');
      throw new AuthorizationFailure(
        'email_unverified',
        `The provider says the email address of this account (${claims.email}) is not verified, so mailgate will not send as it. Verify the address at the provider, or sign in with another account, then press Authorize again.`,
        t.serverId,
        null,
        { params: { email: claims.email ?? '' } },
      );
    }
    // Without discovery there is no ID token to check: the server's configured user name names the mailbox.
    const fallback = !client.hasIdTokenValidation
      ? ((await this.deps.servers.get(t.serverId).catch(() => null))?.username ?? undefined)
      : undefined;
    const mailbox =
      claims?.email ?? (claims ? providerOf(provider).mailboxFromClaims?.(claims) : undefined) ?? fallback;
    if (!mailbox) {
      await this.auditFailure(params, t, 'no_email');
      throw new AuthorizationFailure(
        'no_email',
        'The account you signed in with has no email address in its ID token, so mailgate cannot tell which mailbox to send from. Sign in with a mail-enabled account (and make sure the integration asks for the "email" scope).',
        t.serverId,
      );
    }
    if (params.expectedMailbox && params.expectedMailbox.toLowerCase() !== mailbox.toLowerCase()) {
      await this.auditFailure(params, t, 'wrong_mailbox');
      throw new AuthorizationFailure(
        'wrong_mailbox',
        `You signed in as ${mailbox}, but this server sends as ${params.expectedMailbox}. Nothing was changed: sign in with ${params.expectedMailbox}.`,
        t.serverId,
        null,
        { params: { mailbox, expected: params.expectedMailbox } },
      );
    }
    await params.beforeStore?.(mailbox);
    if (!tokens.refreshToken) {
      this.deps.log.warn(
        { serverId: t.serverId, provider },
        'the provider issued no refresh token; the grant will need re-authorization when the access token expires',
      );
    }
    await storeGrant(this.deps, {
      serverId: t.serverId,
      integrationId: t.integrationId,
      provider,
      mailbox,
      tokens,
      actor: params.actor,
      ip: params.ip,
      ...(params.auditDetail ? { auditDetail: params.auditDetail } : {}),
    });
    return { serverId: t.serverId, mailbox };
  }

  private async auditFailure(
    params: { actor: Actor; ip?: string | undefined },
    t: { serverId: string; integrationId: string },
    code: string,
  ): Promise<void> {
    await this.deps.audit.record({
      actor: params.actor,
      action: 'oauth.authorize',
      target: `smtp_server:${t.serverId}`,
      outcome: 'failure',
      ...(params.ip ? { ip: params.ip } : {}),
      detail: { integrationId: t.integrationId, error: code.slice(0, 100) },
    });
  }

  /** Drops expired transactions (called by the scheduler). */
  async sweepExpired(now = this.deps.clock.now()): Promise<number> {
    let n = 0;
    for (const doc of await this.deps.store.list<TransactionRecord>(TRANSACTIONS)) {
      if (
        doc.value.expiresAt < now &&
        (await this.deps.store.delete(TRANSACTIONS, doc.id, { ifVersion: doc.version }).catch(() => false))
      )
        n++;
    }
    return n;
  }
}
