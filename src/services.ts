import path from 'node:path';
import { ApiKeyService } from './admin/api-keys.js';
import { AuditLog } from './admin/audit.js';
import { KeyRateLimits } from './admin/key-policy.js';
import { KeyRotationService } from './admin/key-rotation.js';
import { FirstAdminSetup } from './admin/first-admin-setup.js';
import { SessionGeneration, type SessionPolicy } from './admin/sessions.js';
import { LoginGuard } from './admin/login-guard.js';
import type { Actor } from './admin/types.js';
import { UserService } from './admin/users.js';
import { clockReading } from './clock.js';
import type { Config } from './config.js';
import type { Keyring } from './crypto/keyring.js';
import type { ScryptParams } from './crypto/passwords.js';
import type { Logger } from './log.js';
import { createMailServices, type MailServices, type MailServicesDeps } from './mail/service.js';
import { createMetrics, type Metrics } from './metrics.js';
import { systemResolve, type ResolveAll } from './net/connect.js';
import { createEgressPolicy } from './net/egress.js';
import { createEgressFetch } from './net/fetch.js';
import { REFRESH_FAILING_AFTER_MS } from './notify/grant-events.js';
import { createNotifyServices, type NotifyServices, type NotifyTuning } from './notify/service.js';
import type { StoreWithSessions } from './store/sessions.js';
import { createSubmissionFront, type SubmissionFront } from './submission/front.js';
import type { AuthorizeService } from './tokens/authorize.js';
import type { IntegrationService } from './oauth/integrations.js';
import { rotateClientSecret, type RotationResult as SecretRotationResult } from './tokens/secret-rotation.js';
import { createOAuthServices, type OAuthTuning } from './tokens/wiring.js';
import type { TokenService } from './tokens/refresh.js';
import { disconnectGrant, type DisconnectResult } from './tokens/revoke.js';
import { ReconnectLinks } from './tokens/reconnect-links.js';
import type { TokenScheduler } from './tokens/scheduler.js';
import { collectOAuthWarnings, type OAuthWarning } from './tokens/warnings.js';

/**
 * Builds every service from the infrastructure, in dependency order. src/main.ts calls it for the real
 * process; integration tests call it with a temporary file store or a Redis prefix, so tests run exactly
 * the code production runs. Background work (queue workers, token scheduler) starts only in start().
 */
export interface ServiceBase {
  config: Config;
  store: StoreWithSessions;
  keyring: Keyring;
  log: Logger;
  metrics?: Metrics;
  /** Session secrets when config.sessionSecrets is not set (the embedded secret file, read by main). */
  sessionSecrets?: readonly string[];
  /** Idle and absolute session timeouts; defaults 30 min and 12 h. */
  sessionPolicy?: SessionPolicy;
  /** Clock for session timeouts and records (ms since epoch); tests move it. */
  clock?: () => number;
  /** scrypt cost of new password hashes (default N=2^17); test suites lower it to keep logins cheap. */
  passwordHashing?: ScryptParams;
  /** Outgoing-mail test seams: extra SMTP CAs, queue timings (production leaves them unset). */
  mail?: Pick<MailServicesDeps, 'tlsCa' | 'queue' | 'maxConnections'>;
  /** OAuth test seams: provider fetch hook (fault injection), request timeout, backoff, scheduler poll. */
  oauthTuning?: OAuthTuning;
  /** DNS answers for egress-checked connections (tests stand in for a rebinding name server); default the system resolver. */
  egressResolve?: ResolveAll;
  /** Notification test seams: worker poll, webhook timeout, delivery backoff, check interval. */
  notifyTuning?: NotifyTuning;
}

/** OAuth actions that span integrations, grants and their stored records. */
export interface OAuthAdmin {
  /** Expiring secrets, grants to re-authorize, Google apps in testing. */
  warnings: () => Promise<OAuthWarning[]>;
  /** Deletes a server's tokens and revokes them at the provider where it can. */
  disconnect: (serverId: string, actor: Actor, ip?: string) => Promise<DisconnectResult>;
  /** Proves a new credential (client secret, certificate, service-account key) with the provider, then switches to it. */
  rotateClientSecret: (
    integrationId: string,
    input: Parameters<typeof rotateClientSecret>[2],
    actor: Actor,
    ip?: string,
  ) => Promise<SecretRotationResult>;
}

/** The service graph: what the process runs, whatever serves it (the web app, a test, a benchmark). */
export interface Services extends Omit<
  ServiceBase,
  'mail' | 'metrics' | 'sessionSecrets' | 'oauthTuning' | 'egressResolve' | 'notifyTuning'
> {
  metrics: Metrics;
  readinessChecks: Array<{ name: string; check(): Promise<{ ok: boolean; detail?: unknown }> }>;
  users: UserService;
  /** Password checks under the login limits (per address, per account, bounded hashing). */
  loginGuard: LoginGuard;
  /** First-run setup page (embedded store only; null on Redis). */
  firstAdminSetup: FirstAdminSetup | null;
  apiKeys: ApiKeyService;
  /** rateLimitPerMinute of API keys, shared by every instance on the store. */
  keyRates: KeyRateLimits;
  audit: AuditLog;
  sessionGeneration: SessionGeneration;
  /** Outgoing mail: SMTP servers, transports, Test connection, the queue (src/mail/service.ts). */
  mail: MailServices;
  /** Session signing secrets, first signs: MAILGATE_SESSION_SECRETS or the embedded secret file. */
  sessionSecrets: readonly string[];
  /** Encryption key status and rotation, one run at a time across instances and the CLI. */
  keyRotation: KeyRotationService;
  oauthIntegrations: IntegrationService;
  tokens: TokenService;
  authorize: AuthorizeService;
  tokenScheduler: TokenScheduler;
  oauthAdmin: OAuthAdmin;
  /** Notification channels, events and their delivery (src/notify/). */
  notify: NotifyServices;
  /** Reconnect links: a mailbox owner re-authorizes one server without an account. */
  reconnectLinks: ReconnectLinks;
  /** The SMTP submission front (MAILGATE_SUBMISSION_PORT): main.ts starts it beside the HTTP server; stop() stops it. */
  submission: SubmissionFront;
  /** Starts background work (workers, schedulers, subscriptions). */
  start(): Promise<void>;
  /** Stops background work and waits for in-flight work to finish; does not close the store. */
  stop(): Promise<void>;
}

export async function createServices(base: ServiceBase): Promise<Services> {
  const metrics = base.metrics ?? createMetrics();
  const starters: Array<() => Promise<void>> = [];
  const stoppers: Array<() => Promise<void>> = [];

  // Areas add their services here, each after the ones it depends on.
  const clock = base.clock ?? Date.now;
  const time = clockReading(clock);
  const audit = new AuditLog(base.store, clock);
  const users = new UserService(base.store, clock, undefined, base.passwordHashing);
  const loginGuard = new LoginGuard(base.store, users);
  const apiKeys = new ApiKeyService(base.store, audit, time);
  const sessionGeneration = new SessionGeneration(base.store, audit);
  const sessionSecrets = base.config.sessionSecrets ?? base.sessionSecrets;
  if (!sessionSecrets || sessionSecrets.length === 0)
    throw new Error('no session secret: set MAILGATE_SESSION_SECRETS (or let the embedded store create one)');
  const firstAdmin = await users.ensureFirstAdmin(
    base.config.MAILGATE_ADMIN_EMAIL,
    base.config.MAILGATE_ADMIN_PASSWORD,
  );
  if (firstAdmin) {
    base.log.info({ email: firstAdmin.email }, 'created the first sysadmin from MAILGATE_ADMIN_EMAIL');
    await audit.record({
      actor: { type: 'system', id: 'startup' },
      action: 'user.create',
      target: `user:${firstAdmin.email}`,
      outcome: 'success',
      detail: { role: 'sysadmin', source: 'MAILGATE_ADMIN_EMAIL' },
    });
  }

  // Admin-entered endpoints (SMTP hosts, custom OAuth URLs) connect only where the egress policy allows.
  const egress = {
    policy: createEgressPolicy({
      production: base.config.NODE_ENV === 'production',
      allow: base.config.MAILGATE_EGRESS_ALLOW,
    }),
    resolve: base.egressResolve ?? systemResolve,
  };

  const egressFetch = createEgressFetch(egress);
  // OAuth before mail: the transport gets tokens only from the token service; the authorize flow reads servers lazily.
  const oauth = createOAuthServices({
    ...base,
    clock: time,
    audit,
    metrics,
    servers: { get: (id) => mail.servers.get(id) },
    egressFetch,
  });
  // The setup page exists only on an exclusive store (the embedded one): on a shared store the CLI can create the first admin at any time.
  const firstAdminSetup = base.store.exclusive
    ? new FirstAdminSetup({
        store: base.store,
        users,
        codeFile: path.join(base.config.MAILGATE_DATA_DIR, 'first-admin-code.txt'),
        now: clock,
      })
    : null;

  const mail = createMailServices({
    config: base.config,
    store: base.store,
    keyring: base.keyring,
    log: base.log,
    audit,
    metrics,
    oauth: oauth.tokens,
    egress,
    clock: time,
    integrationInfo: async (id) => {
      const doc = await oauth.integrations.find(id);
      return doc ? { provider: doc.value.provider, graphBaseUrl: doc.value.graphBaseUrl ?? null } : null;
    },
    egressFetch,
    ...base.mail,
  });
  oauth.tokens.addListener({
    // invalid_grant: hold the server's mail instead of burning attempts; re-authorization releases it.
    needsReauth: (g) =>
      mail.servers.pause(g.serverId, {
        reason: 'The mailbox authorization was revoked or expired: press Re-authorize.',
        code: 'oauth_needs_reauth',
      }),
    authorized: async (g) => {
      await mail.queue.resumeServer(g.serverId);
    },
  });
  starters.push(() => mail.start({ workers: base.config.MAILGATE_WORKERS }));
  const warnings = () => collectOAuthWarnings({ store: base.store, integrations: oauth.integrations }, time.now());
  const notify = createNotifyServices({
    store: base.store,
    keyring: base.keyring,
    audit,
    log: base.log,
    clock: time,
    metrics,
    mail,
    route: { grantStatus: async (id) => (await oauth.tokens.get(id))?.value.status ?? null },
    egress,
    egressFetch,
    warnings,
    nameOf: async (target) => {
      const [kind, id = ''] = target.split(':', 2);
      if (kind === 'smtp_server') return (await mail.servers.get(id)).name;
      if (kind === 'oauth_integration') return (await oauth.integrations.get(id))?.value.name ?? id;
      return target;
    },
    baseUrl: base.config.MAILGATE_BASE_URL,
    queueLimits: { maxMessages: base.config.MAILGATE_QUEUE_MAX_MESSAGES },
    tuning: base.notifyTuning,
  });
  const quietly = (what: string, work: Promise<void>) =>
    void work.catch((err: unknown) => base.log.error({ err }, `notification for ${what} failed`));
  // Every transition is reported once across instances (src/notify/events.ts); these only say what happened here.
  oauth.tokens.addListener({
    needsReauth: (g) => notify.grants.needsReauth(g),
    authorized: (g) => notify.grants.recovered(g),
    refreshRecovered: (g) => notify.grants.recovered(g),
    refreshFailing: async (g) => {
      if (g.failingFor >= REFRESH_FAILING_AFTER_MS) await notify.grants.refreshFailing(g);
    },
  });
  mail.servers.onChange((id) => quietly('server change', notify.serverChanged(id)));
  mail.queue.onMessageFailed((id, m) =>
    quietly('failed message', notify.messageFailed(id, m.serverId, m.lastError?.message ?? null, m.apiKeyId)),
  );
  starters.push(() => notify.start({ workers: base.config.MAILGATE_WORKERS }));
  stoppers.push(() => notify.stop());
  stoppers.push(() => mail.stop());
  mail.servers.onChange((id) => void oauth.forgetIfServerDeleted(id));
  // App-only servers need no Authorize: their grant follows the server's settings as soon as they change.
  mail.servers.onChange((id) => void oauth.appOnly.ensure(id).catch(() => null));
  starters.push(() => oauth.start());
  stoppers.push(() => oauth.stop());
  const oauthAdmin: OAuthAdmin = {
    warnings,
    disconnect: (serverId, actor, ip) =>
      disconnectGrant(
        { store: base.store, keyring: base.keyring, log: base.log, audit, integrations: oauth.integrations },
        serverId,
        actor,
        ip,
      ),
    rotateClientSecret: (integrationId, input, actor, ip) =>
      rotateClientSecret(
        { store: base.store, audit, integrations: oauth.integrations, tokens: oauth.tokens },
        integrationId,
        input,
        actor,
        ip,
      ),
  };

  const reconnectLinks = new ReconnectLinks({
    store: base.store,
    keyring: base.keyring,
    audit,
    clock: time,
    servers: { get: (id) => mail.servers.get(id) },
    authorize: oauth.authorize,
    integrations: oauth.integrations,
    tokens: oauth.tokens,
    secrets: sessionSecrets,
  });
  let linkSweeper: NodeJS.Timeout | undefined;
  starters.push(async () => {
    if (!base.config.MAILGATE_WORKERS) return;
    linkSweeper = setInterval(() => void reconnectLinks.sweepExpired().catch(() => 0), 3600_000);
    linkSweeper.unref();
  });
  stoppers.push(async () => clearInterval(linkSweeper));

  const keyRates = new KeyRateLimits(base.store);
  const submission = createSubmissionFront({ ...base, apiKeys, keyRates, audit, mail });
  // Stopped first: a message it answered 250 is already stored, and the queue must still be there to store it.
  stoppers.push(() => submission.stop());

  return {
    ...base,
    submission,
    reconnectLinks,
    readinessChecks: [oauth.readinessCheck],
    oauthIntegrations: oauth.integrations,
    tokens: oauth.tokens,
    authorize: oauth.authorize,
    tokenScheduler: oauth.scheduler,
    oauthAdmin,
    notify,
    keyRotation: new KeyRotationService({ store: base.store, keyring: base.keyring, audit }),
    metrics,
    audit,
    users,
    loginGuard,
    firstAdminSetup,
    apiKeys,
    keyRates,
    sessionGeneration,
    sessionSecrets,
    mail,
    async start() {
      for (const s of starters) await s();
    },
    async stop() {
      for (const s of stoppers.reverse()) await s();
    },
  };
}
