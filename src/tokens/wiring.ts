import type { AuditRecorder } from '../admin/types.js';
import { systemClock, type Clock } from '../clock.js';
import type { Config } from '../config.js';
import type { Keyring } from '../crypto/keyring.js';
import { AppError } from '../errors.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import type { Store } from '../store/store.js';
import { IntegrationService } from '../oauth/integrations.js';
import { AppOnlyGrants } from './app-only.js';
import { AuthorizeService, type ServerLookup } from './authorize.js';
import { ensureGrantIndexes, grantCounts } from './grant-index.js';
import { countGrantsOfIntegration } from './grants.js';
import { TokenService } from './refresh.js';
import { disconnectGrant } from './revoke.js';
import { TokenScheduler } from './scheduler.js';
import { collectOAuthWarnings } from './warnings.js';

/** Builds the OAuth area (integrations, token service, scheduler, authorize flow) for createServices. */

export interface OAuthTuning {
  /** Replaces fetch for every provider request (fault injection in tests). */
  fetch?: typeof fetch;
  requestTimeoutSec?: number;
  backoffBaseMs?: number;
  backoffMaxMs?: number;
  schedulerPollMs?: number;
  /** How much longer than the request timeout a refresh lock lives. */
  lockMarginMs?: number;
  afterLock?: (grantId: string) => Promise<void>;
}

export interface OAuthBase {
  config: Config;
  store: Store;
  keyring: Keyring;
  log: Logger;
  audit: AuditRecorder;
  metrics?: Metrics;
  /** The SMTP servers, as the authorize flow and server deletion need them (the mail area owns them). */
  servers: ServerLookup;
  oauthTuning?: OAuthTuning;
  /** The time of the token service, scheduler and authorize flow (the system clock by default). */
  clock?: Clock | undefined;
  /** fetch under the egress policy, for custom integrations' endpoints. */
  egressFetch?: typeof fetch;
}

const READINESS_TTL_MS = 5000;

export function createOAuthServices(base: OAuthBase) {
  const tuning = base.oauthTuning ?? {};
  const clock = base.clock ?? systemClock;
  // The readiness answer is kept a few seconds; an integration changed here drops it at once.
  let readiness: { at: number; result: Promise<{ ok: boolean; detail: unknown }> } | null = null;
  const integrations = new IntegrationService({
    config: base.config,
    store: base.store,
    keyring: base.keyring,
    log: base.log,
    audit: base.audit,
    fetch: tuning.fetch,
    egressFetch: base.egressFetch,
    requestTimeoutSec: tuning.requestTimeoutSec,
    grantsOf: (integrationId) => countGrantsOfIntegration(base.store, integrationId),
    onChange: () => {
      readiness = null;
    },
  });
  const appOnly: AppOnlyGrants = new AppOnlyGrants({
    store: base.store,
    keyring: base.keyring,
    integrations,
    servers: base.servers,
    clock,
    onChanged: (doc): Promise<void> => tokens.notifyAuthorized(doc),
  });
  const tokens: TokenService = new TokenService({
    appOnly,
    store: base.store,
    keyring: base.keyring,
    log: base.log,
    audit: base.audit,
    integrations,
    metrics: base.metrics,
    backoffBaseMs: tuning.backoffBaseMs,
    backoffMaxMs: tuning.backoffMaxMs,
    afterLock: tuning.afterLock,
    lockMarginMs: tuning.lockMarginMs,
    clock,
  });
  const scheduler = new TokenScheduler({
    store: base.store,
    tokens,
    log: base.log,
    pollMs: tuning.schedulerPollMs,
    clock,
  });
  tokens.addListener({
    authorized: (g) => scheduler.reschedule(g.grantId),
    needsReauth: (g) => scheduler.reschedule(g.grantId),
  });
  const authorize = new AuthorizeService({
    store: base.store,
    keyring: base.keyring,
    log: base.log,
    audit: base.audit,
    integrations,
    tokens,
    servers: base.servers,
    clock,
  });
  async function readinessDetail(): Promise<{ ok: boolean; detail: unknown }> {
    const warnings = await collectOAuthWarnings({ store: base.store, integrations }, clock.now());
    // /readyz answers anyone: how many warnings of each kind, never an id, mailbox address, name or hint.
    const perKind = new Map<string, number>();
    for (const { kind } of warnings) perKind.set(kind, (perKind.get(kind) ?? 0) + 1);
    // The list is capped; the counter has the full number.
    const { needs_reauth } = await grantCounts(base.store);
    if (needs_reauth > 0) perKind.set('needs_reauth', Math.max(needs_reauth, perKind.get('needs_reauth') ?? 0));
    return { ok: true, detail: { warnings: [...perKind].map(([kind, count]) => ({ kind, count })) } };
  }
  let sweeper: NodeJS.Timeout | undefined;
  return {
    integrations,
    tokens,
    appOnly,
    scheduler,
    authorize,
    readinessCheck: {
      name: 'oauth',
      // Warnings never fail readiness: mail still flows for every other server.
      async check() {
        // Probes come every few seconds from every load balancer: the answer is kept for a few seconds.
        const now = clock.now();
        if (readiness && now - readiness.at < READINESS_TTL_MS && now >= readiness.at) return readiness.result;
        const result = readinessDetail();
        readiness = { at: now, result };
        result.catch(() => (readiness = null));
        return result;
      },
    },
    /**
     * A deleted SMTP server leaves no tokens behind: its grant is deleted and revoked at the provider.
     * Called on every server change; several instances may race, the first one does it.
     */
    async forgetIfServerDeleted(serverId: string): Promise<void> {
      const grant = await tokens.get(serverId);
      if (!grant) return;
      const exists = await base.servers.get(serverId).then(
        () => true,
        (err: unknown) => !(err instanceof AppError && err.code === 'not_found'),
      );
      if (exists) return;
      await disconnectGrant(
        { store: base.store, keyring: base.keyring, log: base.log, audit: base.audit, integrations },
        serverId,
        { type: 'system', id: 'smtp-server-deleted' },
      ).catch((err: unknown) => {
        if (!(err instanceof AppError && err.code === 'not_found'))
          base.log.error({ err, serverId }, 'cannot drop the grant of a deleted SMTP server');
      });
    },
    async start() {
      await ensureGrantIndexes(base.store, base.log, clock.now());
      if (!base.config.MAILGATE_WORKERS) return;
      await scheduler.start();
      sweeper = setInterval(() => void authorize.sweepExpired().catch(() => 0), 60_000);
      sweeper.unref();
    },
    async stop() {
      clearInterval(sweeper);
      await scheduler.stop();
    },
  };
}
