import path from 'node:path';
import { fileURLToPath } from 'node:url';
import express, { type Express } from 'express';
import helmet from 'helmet';
import type { ApiKeyService } from './admin/api-keys.js';
import type { AuditLog } from './admin/audit.js';
import type { KeyRateLimits } from './admin/key-policy.js';
import type { FirstAdminSetup } from './admin/first-admin-setup.js';
import type { SessionGeneration } from './admin/sessions.js';
import type { LoginGuard } from './admin/login-guard.js';
import type { UserService } from './admin/users.js';
import type { Config } from './config.js';
import type { Keyring } from './crypto/keyring.js';
import type { Logger } from './log.js';
import type { MailServices } from './mail/service.js';
import type { Metrics } from './metrics.js';
import type { StoreWithSessions } from './store/sessions.js';
import { accountRouter } from './web/account.js';
import { apiKeysRouter } from './web/api-keys.js';
import { auditRouter } from './web/audit.js';
import { oauthCallbackRouter, oauthPanelData } from './web/oauth-callback.js';
import { oauthIntegrationsRouter } from './web/oauth-integrations.js';
import type { AuthorizeService } from './tokens/authorize.js';
import type { IntegrationService } from './oauth/integrations.js';
import type { TokenService } from './tokens/refresh.js';
import { collectOAuthWarnings } from './tokens/warnings.js';
import type { TokenScheduler } from './tokens/scheduler.js';
import { createAuthMiddleware } from './web/auth.js';
import type { WebContext } from './web/context.js';
import { encryptionKeysRouter } from './web/encryption-keys.js';
import { createErrorHandler, notFound } from './web/error-handler.js';
import { healthRouter, type ReadinessCheck } from './web/health.js';
import { loginRouter } from './web/login.js';
import { setupRouter } from './web/setup.js';
import { mailQueueRouter } from './web/mail-queue.js';
import { messagesRouter } from './web/messages.js';
import { createRenderer } from './web/render.js';
import { createSessionLayer, type SessionPolicy } from './web/session.js';
import { smtpServersRouter } from './web/smtp-servers.js';

/**
 * Everything the web layer needs, built by src/main.ts (or a test) and passed in: createApp has no
 * side effects beyond building the Express app.
 */
export interface AppDeps {
  config: Config;
  store: StoreWithSessions;
  keyring: Keyring;
  log: Logger;
  metrics: Metrics;
  readinessChecks?: ReadinessCheck[];
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
  /** Idle and absolute session timeouts; defaults 30 min and 12 h. */
  sessionPolicy?: SessionPolicy;
  /** Clock for session timeouts and records (ms since epoch); tests move it. */
  clock?: () => number;
  oauthIntegrations: IntegrationService;
  tokens: TokenService;
  authorize: AuthorizeService;
  tokenScheduler: TokenScheduler;
}

const publicDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../public');

export function createApp(deps: AppDeps): Express {
  const { config, log, metrics } = deps;
  const app = express();
  const eta = createRenderer({ cache: config.NODE_ENV === 'production' });

  app.disable('x-powered-by');
  app.set('trust proxy', config.MAILGATE_TRUST_PROXY);
  app.set('query parser', 'simple');

  app.use((req, res, next) => {
    const end = metrics.httpDuration.startTimer({ method: req.method });
    res.on('finish', () => {
      const route =
        (req.route as { path?: string } | undefined)?.path ??
        (res.statusCode === 404 ? 'unmatched' : req.baseUrl || 'other');
      end({ route });
      metrics.httpRequests.inc({ method: req.method, route, status: String(res.statusCode) });
    });
    next();
  });

  app.use(
    helmet({
      contentSecurityPolicy: {
        directives: {
          defaultSrc: ["'self'"],
          scriptSrc: ["'self'"],
          styleSrc: ["'self'"],
          imgSrc: ["'self'"],
          formAction: ["'self'"],
          frameAncestors: ["'none'"],
          objectSrc: ["'none'"],
          baseUri: ["'none'"],
        },
      },
      strictTransportSecurity: config.secureCookies,
    }),
  );
  // After helmet, so probes, metrics and static files get nosniff and the other headers too.
  app.use(
    healthRouter({
      store: deps.store,
      metrics,
      readinessChecks: deps.readinessChecks,
      metricsToken: config.MAILGATE_METRICS_TOKEN,
    }),
  );
  app.use('/static', express.static(publicDir, { index: false, maxAge: '1h' }));
  app.use('/api', express.json({ limit: '2mb', strict: true }));
  app.use(express.urlencoded({ extended: false, limit: '256kb', parameterLimit: 200 }));

  // Areas mount here, in this order: sessions/CSRF/login, then admin pages and the JSON API.
  app.use(
    createSessionLayer({
      config,
      store: deps.store,
      users: deps.users,
      sessionGeneration: deps.sessionGeneration,
      secrets: deps.sessionSecrets,
      policy: deps.sessionPolicy,
      now: deps.clock,
    }),
  );
  const web: WebContext = { deps, auth: createAuthMiddleware({ apiKeys: deps.apiKeys }), eta };
  // The send API first: the busiest route, so its requests do not walk every other router's routes.
  app.use(messagesRouter(web));
  app.use(loginRouter(web));
  app.use(accountRouter(web));
  if (deps.firstAdminSetup) app.use(setupRouter(web, deps.firstAdminSetup));
  app.use(apiKeysRouter(web));
  app.use(auditRouter(web));
  app.use(encryptionKeysRouter(web));
  app.use(
    smtpServersRouter(web, {
      oauthPanel: (server) => oauthPanelData(deps, server),
      oauthStatus: async (serverId) => (await deps.tokens.get(serverId))?.value.status ?? null,
      integrations: async () => (await deps.oauthIntegrations.list()).map((d) => ({ id: d.id, name: d.value.name })),
      warnings: () => collectOAuthWarnings({ store: deps.store, integrations: deps.oauthIntegrations }),
    }),
  );
  app.use(mailQueueRouter(web));
  app.use(oauthIntegrationsRouter(web));
  app.use(oauthCallbackRouter(web));

  app.use(notFound);
  app.use(createErrorHandler(log, eta));
  return app;
}
