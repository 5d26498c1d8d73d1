import type { Actor } from '../admin/types.js';
import { backoffDelay } from '../backoff.js';
import { systemClock, type Clock } from '../clock.js';
import { AppError } from '../errors.js';
import { type OAuthClient, OAuthProtocolError } from '../oauth/client.js';
import { diagnoseOAuthError } from '../oauth/diagnose.js';
import { type Doc, type Lock, VersionConflictError } from '../store/store.js';
import {
  acquireGrantLock,
  GRANTS,
  openToken,
  sealToken,
  type GrantError,
  type GrantRecord,
  type GrantView,
} from './grants.js';
import { TokenListeners } from './listeners.js';
import { appOnlyFailure, requestTokens } from './app-only-requests.js';
import { grantIndexChanges } from './grant-index.js';
import { needsRefresh, refreshDueAt } from './refresh-policy.js';
import { reauthError, temporaryError } from './token-errors.js';
import type { AccessToken, RefreshOutcome, TokenListener, TokenServiceDeps } from './token-service-types.js';

/**
 * The only refresher of access tokens (DESIGN.md flow 2).
 *
 *  - In one process, concurrent callers of one grant share one refresh (single-flight).
 *  - Across processes, a store lock (`SET NX PX`, random owner, compare-and-delete release) whose TTL is
 *    longer than the token request timeout; after taking it the grant is read again, because another
 *    instance may have refreshed while we waited.
 *  - Right before the token request the lock is extended (proving we still hold it) and the write after
 *    it is version-checked (`ifVersion`), so a holder that stalled past its TTL neither spends a refresh
 *    token someone else already rotated nor overwrites newer tokens.
 *  - A rotated refresh token is stored before the new access token is handed to anyone. Each write moves the
 *    grant's indexes (grant-index.ts) in the same step.
 *  - Temporary failures back off with jitter and never kill the grant; `invalid_grant` marks it
 *    `needs_reauth` once (log + audit + listeners); `invalid_client` flags the integration.
 */

export { needsRefresh, REFRESH_MARGIN_FRACTION, REFRESH_MARGIN_MAX_MS, refreshDueAt } from './refresh-policy.js';
export { refreshMarginMs } from './refresh-policy.js';
export type { AccessToken, RefreshOutcome, TokenListener, TokenServiceDeps } from './token-service-types.js';

const SYSTEM: Actor = { type: 'system', id: 'token-service' };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
export class TokenService {
  readonly #inflight = new Map<string, Promise<AccessToken>>();
  readonly #listeners: TokenListeners;
  /** Token requests this process sent to providers (for tests and the bench). */
  readonly stats = { refreshRequests: 0, refreshFailures: 0, staleWritesRejected: 0, lockLost: 0 };
  readonly lockTtlMs: number;
  readonly #backoffBaseMs: number;
  readonly #backoffMaxMs: number;
  readonly #clock: Clock;

  constructor(private readonly deps: TokenServiceDeps) {
    // Longer than the token request may take, so a live holder never loses the lock mid-request.
    this.lockTtlMs = deps.integrations.requestTimeoutSec * 1000 + (deps.lockMarginMs ?? 5000);
    this.#clock = deps.clock ?? systemClock;
    this.#listeners = new TokenListeners(deps.log);
    this.#backoffBaseMs = deps.backoffBaseMs ?? 2000;
    this.#backoffMaxMs = deps.backoffMaxMs ?? 5 * 60_000;
  }

  addListener(listener: TokenListener): void {
    this.#listeners.add(listener);
  }

  async get(grantId: string): Promise<Doc<GrantRecord> | null> {
    return this.deps.store.get<GrantRecord>(GRANTS, grantId);
  }

  view(doc: Doc<GrantRecord>): GrantView {
    const g = doc.value;
    return {
      id: doc.id,
      serverId: g.serverId,
      integrationId: g.integrationId,
      mailbox: g.mailbox,
      status: g.status,
      hasRefreshToken: g.tokens.refreshToken !== null,
      accessTokenExpiresAt: g.tokens.expiresAt,
      lastRefreshAt: g.lastRefreshAt,
      nextRefreshAt: g.status === 'active' ? Math.max(refreshDueAt(g), g.retryAt ?? 0) : null,
      lastError: g.lastError,
      retryAt: g.retryAt,
      authorizedAt: g.authorizedAt,
      authorizedBy: g.authorizedBy,
    };
  }

  /** GrantSource for the mail area; an app-only server's grant is made (or brought up to date) here. */
  async grantForServer(serverId: string): Promise<{ grantId: string; mailbox: string; status: string } | null> {
    // Server changes update app-only grants as they happen (services.ts): the send path only makes a missing one.
    const doc = (await this.get(serverId)) ?? (await this.deps.appOnly?.ensure(serverId)) ?? null;
    return doc ? { grantId: doc.id, mailbox: doc.value.mailbox, status: doc.value.status } : null;
  }

  /**
   * A valid access token. `force` (nodemailer's `renew` after the server rejected a token) refreshes even
   * when the token looks valid — unless someone refreshed since, in which case that newer token is used.
   */
  async getAccessToken(grantId: string, options: { force?: boolean } = {}): Promise<AccessToken> {
    const force = options.force === true;
    const doc = await this.load(grantId);
    const now = this.#clock.now();
    if (!force && !needsRefresh(doc.value, now)) return this.tokenOf(doc);
    // In backoff after a temporary failure: use the current token while it lasts, else fail fast.
    if (doc.value.retryAt !== null && now < doc.value.retryAt) {
      if (!force && doc.value.tokens.expiresAt > now + 1000) return this.tokenOf(doc);
      throw this.temporaryError(doc.value.lastError);
    }
    const running = this.#inflight.get(grantId);
    if (running) return running;
    const refresh = this.refreshAcrossProcesses(grantId, force, doc.value.tokens.obtainedAt).finally(() =>
      this.#inflight.delete(grantId),
    );
    this.#inflight.set(grantId, refresh);
    return refresh;
  }

  private async load(grantId: string): Promise<Doc<GrantRecord>> {
    const doc = await this.get(grantId);
    if (!doc) throw reauthError('This server has no authorized mailbox: press Authorize on the SMTP server page.');
    if (doc.value.status === 'needs_reauth') throw reauthError(undefined, doc.value.lastError?.hint);
    return doc;
  }

  private tokenOf(doc: Doc<GrantRecord>): AccessToken {
    return {
      accessToken: openToken(this.deps.keyring, doc.id, 'accessToken', doc.value.tokens.accessToken),
      expiresAt: doc.value.tokens.expiresAt,
      mailbox: doc.value.mailbox,
    };
  }

  private temporaryError(lastError: GrantError | null): AppError {
    return temporaryError(lastError);
  }

  /**
   * Whether the stored grant already answers the caller: a token that needs no refresh, or — for `force`,
   * whose caller saw its token rejected — a token obtained after the one the caller saw.
   */
  private satisfies(doc: Doc<GrantRecord>, force: boolean, seenObtainedAt: number): boolean {
    if (force)
      return doc.value.tokens.obtainedAt !== seenObtainedAt && doc.value.tokens.expiresAt > this.#clock.now() + 1000;
    return !needsRefresh(doc.value, this.#clock.now());
  }

  private async refreshAcrossProcesses(grantId: string, force: boolean, seenObtainedAt: number): Promise<AccessToken> {
    // Waiting on another holder's lock is real time: the store expires locks by its own clock.
    const deadline = Date.now() + this.lockTtlMs * 2;
    for (;;) {
      const lock = await acquireGrantLock(this.deps.store, grantId, this.lockTtlMs);
      if (lock) {
        let token: AccessToken | 'lock_lost';
        try {
          token = await this.refreshHolding(grantId, force, seenObtainedAt, lock);
        } finally {
          await lock.release().catch(() => false);
        }
        if (token !== 'lock_lost') return token;
        this.stats.lockLost++;
      } else {
        await sleep(40 + Math.random() * 80);
      }
      // Another instance holds (or took over) the lock: its write is what we wait for.
      const doc = await this.load(grantId);
      if (this.satisfies(doc, force, seenObtainedAt)) return this.tokenOf(doc);
      if (doc.value.retryAt !== null && this.#clock.now() < doc.value.retryAt) {
        if (!force && doc.value.tokens.expiresAt > this.#clock.now() + 1000) return this.tokenOf(doc);
        throw this.temporaryError(doc.value.lastError);
      }
      if (Date.now() > deadline) throw this.temporaryError(null);
    }
  }

  private async refreshHolding(
    grantId: string,
    force: boolean,
    seenObtainedAt: number,
    lock: Lock,
  ): Promise<AccessToken | 'lock_lost'> {
    const doc = await this.load(grantId);
    if (this.satisfies(doc, force, seenObtainedAt)) return this.tokenOf(doc);
    await this.deps.afterLock?.(grantId);
    let client: OAuthClient | null = null;
    let result: RefreshOutcome;
    try {
      client = await this.deps.integrations.client(doc.value.integrationId);
    } catch (err) {
      result = await this.onFailure(doc, err);
    }
    result ??= await this.refreshWith(doc, client!, lock);
    if (result.outcome === 'refreshed') return result.token;
    if (result.outcome === 'lock_lost') return 'lock_lost';
    // A refresh ahead of expiry failed for a passing reason: the current token still works, use it.
    if (!force && result.tokenStillValid) return this.tokenOf(doc);
    throw result.error;
  }

  /**
   * One refresh_token request with `client`, under `lock`. Public for secret rotation, which proves a new
   * secret with exactly this request (and must store a rotated refresh token like any refresh).
   */
  async refreshWith(
    doc: Doc<GrantRecord>,
    client: OAuthClient,
    lock: Lock,
    options: { rethrow?: boolean } = {},
  ): Promise<RefreshOutcome> {
    const grantId = doc.id;
    if (!doc.value.tokens.refreshToken && !doc.value.appOnly) {
      return this.markNeedsReauth(
        doc,
        new OAuthProtocolError('invalid_grant', 'no_refresh_token', 'the provider issued no refresh token'),
      );
    }
    // Last moment before spending the refresh token: do we still hold the lock, and is the grant unchanged?
    if (!(await lock.extend(this.lockTtlMs))) return { outcome: 'lock_lost' };
    const current = await this.deps.store.get<GrantRecord>(GRANTS, grantId);
    if (!current || current.version !== doc.version) return { outcome: 'lock_lost' };
    this.stats.refreshRequests++;
    let result;
    try {
      result = await requestTokens(this.deps.keyring, doc, client);
    } catch (err) {
      this.stats.refreshFailures++;
      // Proving a new secret: a rejected client is that secret's fault, not the integration's; nothing is recorded.
      if (options.rethrow && err instanceof OAuthProtocolError && err.kind === 'invalid_client')
        return { outcome: 'failed', error: err, tokenStillValid: false };
      return this.onFailure(doc, err);
    }
    const now = this.#clock.now();
    const expiresAt = now + (result.expiresIn ?? 3600) * 1000;
    const record: GrantRecord = {
      ...doc.value,
      scope: result.scope ?? doc.value.scope,
      tokens: {
        accessToken: sealToken(this.deps.keyring, grantId, 'accessToken', result.accessToken),
        // Providers that do not rotate send no refresh token: keep the one we have.
        refreshToken: result.refreshToken
          ? sealToken(this.deps.keyring, grantId, 'refreshToken', result.refreshToken)
          : doc.value.tokens.refreshToken,
        expiresAt,
        obtainedAt: now,
      },
      lastRefreshAt: now,
      lastError: null,
      failures: 0,
      retryAt: null,
      failingSince: null,
    };
    try {
      await this.deps.store.put(GRANTS, grantId, record, {
        ifVersion: doc.version,
        ...grantIndexChanges(doc.value, record, now),
      });
    } catch (err) {
      if (!(err instanceof VersionConflictError)) throw err;
      // We stalled and someone else wrote newer tokens: theirs win, ours are dropped.
      this.stats.staleWritesRejected++;
      this.deps.log.warn(
        { grantId, expected: err.expected, actual: err.actual },
        'stale token write rejected by the version check; using the newer tokens',
      );
      const newer = await this.load(grantId);
      return { outcome: 'refreshed', token: this.tokenOf(newer) };
    }
    this.deps.metrics?.tokenRefreshes.inc({ outcome: 'success' });
    if (doc.value.lastError?.kind === 'invalid_client')
      await this.deps.integrations.clearMisconfigured(doc.value.integrationId);
    if (doc.value.failures > 0) await this.#listeners.emit('refreshRecovered', this.ref(doc));
    return { outcome: 'refreshed', token: { accessToken: result.accessToken, expiresAt, mailbox: doc.value.mailbox } };
  }

  /** Records a failed refresh on the grant (backoff, or needs_reauth) and says what the caller gets. */
  private async onFailure(doc: Doc<GrantRecord>, err: unknown): Promise<RefreshOutcome & { outcome: 'failed' }> {
    if (doc.value.appOnly) err = appOnlyFailure(err);
    const e =
      err instanceof OAuthProtocolError
        ? err
        : err instanceof AppError
          ? new OAuthProtocolError('temporary', err.code, err.message)
          : new OAuthProtocolError('temporary', 'error', String(err));
    if (e.kind === 'invalid_grant') return this.markNeedsReauth(doc, e);
    this.deps.metrics?.tokenRefreshes.inc({ outcome: e.kind });
    const integration = await this.deps.integrations.get(doc.value.integrationId).catch(() => null);
    const diagnosis = diagnoseOAuthError(integration?.value ?? { provider: 'custom' }, e.oauthError, e.description);
    if (e.kind === 'invalid_client') await this.deps.integrations.markMisconfigured(doc.value.integrationId, diagnosis);
    const failures = doc.value.failures + 1;
    const retryAt =
      this.#clock.now() + backoffDelay(failures, { baseMs: this.#backoffBaseMs, capMs: this.#backoffMaxMs });
    const lastError: GrantError = {
      at: this.#clock.now(),
      kind: e.kind,
      code: diagnosis.code,
      message: (e.description ?? e.oauthError ?? e.kind).slice(0, 300),
      hint: diagnosis.hint,
    };
    const failingSince = doc.value.failingSince ?? this.#clock.now();
    const next = { ...doc.value, failures, retryAt, lastError, failingSince };
    const options = { ifVersion: doc.version, ...grantIndexChanges(doc.value, next, this.#clock.now()) };
    const written = await this.deps.store.put(GRANTS, doc.id, next, options).then(
      () => true,
      (writeErr: unknown) => {
        if (writeErr instanceof VersionConflictError) return false;
        throw writeErr;
      },
    );
    if (written)
      await this.#listeners.emit('refreshFailing', {
        ...this.ref(doc),
        since: failingSince,
        failingFor: this.#clock.now() - failingSince,
        error: `${diagnosis.code}: ${lastError.message}`.slice(0, 300),
      });
    this.deps.log.warn(
      { grantId: doc.id, kind: e.kind, code: diagnosis.code, failures, retryInMs: retryAt - this.#clock.now() },
      'token refresh failed; will retry',
    );
    // While the current token still works, callers keep sending during the backoff.
    return {
      outcome: 'failed',
      error: this.temporaryError(lastError),
      tokenStillValid: doc.value.tokens.expiresAt > this.#clock.now() + 1000,
    };
  }

  private async markNeedsReauth(
    doc: Doc<GrantRecord>,
    e: OAuthProtocolError,
  ): Promise<RefreshOutcome & { outcome: 'failed' }> {
    const integration = await this.deps.integrations.get(doc.value.integrationId).catch(() => null);
    const diagnosis = diagnoseOAuthError(
      integration?.value ?? { provider: 'custom' },
      e.oauthError ?? 'invalid_grant',
      e.description,
    );
    const lastError: GrantError = {
      at: this.#clock.now(),
      kind: 'invalid_grant',
      code: diagnosis.code,
      message: (e.description ?? e.oauthError ?? 'invalid_grant').slice(0, 300),
      hint: diagnosis.hint,
    };
    let marked = false;
    try {
      const next: GrantRecord = { ...doc.value, status: 'needs_reauth', lastError, retryAt: null };
      const indexes = grantIndexChanges(doc.value, next, this.#clock.now());
      await this.deps.store.put(GRANTS, doc.id, next, { ifVersion: doc.version, ...indexes });
      marked = true;
    } catch (writeErr) {
      if (!(writeErr instanceof VersionConflictError)) throw writeErr;
    }
    this.deps.metrics?.tokenRefreshes.inc({ outcome: 'invalid_grant' });
    if (marked) {
      // Exactly one alert per transition: only the writer that flipped the status reports it.
      this.deps.log.error(
        { grantId: doc.id, serverId: doc.value.serverId, mailbox: doc.value.mailbox, code: diagnosis.code },
        'OAuth grant needs re-authorization: the provider rejected the refresh token',
      );
      await this.deps.audit.record({
        actor: SYSTEM,
        action: 'oauth.grant.needs_reauth',
        target: `smtp_server:${doc.value.serverId}`,
        outcome: 'failure',
        detail: { mailbox: doc.value.mailbox, code: diagnosis.code },
      });
      await this.#listeners.emit('needsReauth', { ...this.ref(doc), hint: diagnosis.hint });
    }
    return { outcome: 'failed', error: reauthError(undefined, diagnosis.hint), tokenStillValid: false };
  }

  private ref(doc: Doc<GrantRecord>): { grantId: string; serverId: string; mailbox: string } {
    return { grantId: doc.id, serverId: doc.value.serverId, mailbox: doc.value.mailbox };
  }

  /** Called by the authorize flow after it stored a grant. */
  async notifyAuthorized(doc: Doc<GrantRecord>): Promise<void> {
    await this.#listeners.emit('authorized', this.ref(doc));
  }
}
