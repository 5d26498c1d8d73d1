import path from 'node:path';
import { ApiKeyService } from './admin/api-keys.js';
import { AuditLog } from './admin/audit.js';
import { KeyRateLimits } from './admin/key-policy.js';
import { FirstAdminSetup } from './admin/first-admin-setup.js';
import { SessionGeneration } from './admin/sessions.js';
import { LoginGuard } from './admin/login-guard.js';
import { UserService } from './admin/users.js';
import type { AppDeps } from './app.js';
import { clockReading } from './clock.js';
import type { Config } from './config.js';
import type { Keyring } from './crypto/keyring.js';
import type { Logger } from './log.js';
import { createMailServices, type MailServicesDeps } from './mail/service.js';
import { createMetrics, type Metrics } from './metrics.js';
import { systemResolve, type ResolveAll } from './net/connect.js';
import { createEgressPolicy } from './net/egress.js';
import { createEgressFetch } from './net/fetch.js';
import type { StoreWithSessions } from './store/sessions.js';
import { createOAuthServices, type OAuthTuning } from './tokens/wiring.js';

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
  sessionPolicy?: AppDeps['sessionPolicy'];
  clock?: () => number;
  /** Outgoing-mail test seams: extra SMTP CAs, queue timings (production leaves them unset). */
  mail?: Pick<MailServicesDeps, 'tlsCa' | 'queue' | 'maxConnections'>;
  /** OAuth test seams: provider fetch hook (fault injection), request timeout, backoff, scheduler poll. */
  oauthTuning?: OAuthTuning;
  /** DNS answers for egress-checked connections (tests stand in for a rebinding name server); default the system resolver. */
  egressResolve?: ResolveAll;
}

export interface Services extends AppDeps {
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
  const users = new UserService(base.store, clock);
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

  // OAuth before mail: the transport gets tokens only from the token service; the authorize flow reads servers lazily.
  const oauth = createOAuthServices({
    ...base,
    clock: time,
    audit,
    metrics,
    servers: { get: (id) => mail.servers.get(id) },
    egressFetch: createEgressFetch(egress),
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
  stoppers.push(() => mail.stop());
  mail.servers.onChange((id) => void oauth.forgetIfServerDeleted(id));
  starters.push(() => oauth.start());
  stoppers.push(() => oauth.stop());

  return {
    ...base,
    readinessChecks: [oauth.readinessCheck],
    oauthIntegrations: oauth.integrations,
    tokens: oauth.tokens,
    authorize: oauth.authorize,
    tokenScheduler: oauth.scheduler,
    metrics,
    audit,
    users,
    loginGuard,
    firstAdminSetup,
    apiKeys,
    keyRates: new KeyRateLimits(base.store),
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
