import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { RequestListener } from 'node:http';
import express, { type Express } from 'express';
import { KeyHandoff } from './admin/key-handoff.js';
import { secretExpiryOf } from './oauth/integration-index.js';
import type { Services } from './services.js';
import { accountRouter } from './web/account.js';
import { apiKeysRouter } from './web/api-keys.js';
import { auditRouter } from './web/audit.js';
import { oauthCallbackRouter, oauthPanelData } from './web/oauth-callback.js';
import { oauthIntegrationsRouter } from './web/oauth-integrations.js';
import { createAuthMiddleware } from './web/auth.js';
import { outgoingMailBanner } from './web/smtp-server-banner.js';
import { createLastTests } from './mail/servers/last-test.js';
import type { WebContext } from './web/context.js';
import { encryptionKeysRouter } from './web/encryption-keys.js';
import { createErrorHandler, notFound } from './web/error-handler.js';
import { healthRouter } from './web/health.js';
import { jsonBody } from './web/json-body.js';
import { languageMiddleware, languageRouter } from './web/language.js';
import { loginRouter } from './web/login.js';
import { setupRouter } from './web/setup.js';
import { mailQueueRouter } from './web/mail-queue.js';
import { createIntake, messageBodyParsers } from './web/message-intake.js';
import { messagesRouter } from './web/messages.js';
import { notificationBanners, notificationsRouter } from './web/notifications.js';
import { openApiRouter } from './web/openapi.js';
import { createRenderer } from './web/render.js';
import { observeRequest } from './web/request-metrics.js';
import { recordHeaders, securityHeaders } from './web/security-headers.js';
import { sendFastPath, type FastPath } from './web/send-fast-path.js';
import { createSessionLayer } from './web/session.js';
import { serverTransportRouter } from './web/server-transport.js';
import { smtpServersRouter } from './web/smtp-servers.js';
import { reconnectPanelData, reconnectRouter, redactLinkPaths } from './web/reconnect.js';

/**
 * The service graph the web app serves, built by src/main.ts (or a test) and passed in: createApp has no
 * side effects beyond building the Express app. Each router gets only the services it uses.
 */
export type AppDeps = Omit<Services, 'start' | 'stop'>;

/** OAuth integrations offered by a server's form (with the one it names): the page costs the same at any count. */
const INTEGRATION_CHOICES = 200;
const publicDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../public');

/**
 * What the HTTP server runs: the send route's fast path (src/web/send-fast-path.ts) in front of the express app,
 * which answers every request the fast path leaves alone.
 */
export function createRequestListener(deps: AppDeps): RequestListener {
  const app = createApp(deps);
  const sendMessage = createSendFastPath(deps);
  return (req, res) => {
    if (!sendMessage(req, res)) app(req, res);
  };
}

/** `POST /api/v1/messages` outside express, on the services and settings createApp gives its route. */
export function createSendFastPath(deps: AppDeps): FastPath {
  const { config } = deps;
  const limits = { maxMessageBytes: config.MAILGATE_MAX_MESSAGE_BYTES, maxBatchBytes: config.MAILGATE_MAX_BATCH_BYTES };
  return sendFastPath({
    auth: createAuthMiddleware({ apiKeys: deps.apiKeys }),
    intake: createIntake({ mail: deps.mail, keyRates: deps.keyRates, limits }),
    limits,
    log: deps.log,
    metrics: deps.metrics,
    securityHeaders: recordHeaders(securityHeaders({ secureCookies: config.secureCookies })),
  });
}

export function createApp(deps: AppDeps): Express {
  const { config, log, metrics } = deps;
  const app = express();
  const eta = createRenderer({ cache: config.NODE_ENV === 'production' });

  app.disable('x-powered-by');
  app.set('trust proxy', config.MAILGATE_TRUST_PROXY);
  app.set('query parser', 'simple');

  app.use((req, res, next) => {
    observeRequest(
      metrics,
      req.method,
      res,
      () =>
        (req.route as { path?: string } | undefined)?.path ??
        (res.statusCode === 404 ? 'unmatched' : req.baseUrl || 'other'),
    );
    next();
  });

  app.use(securityHeaders({ secureCookies: config.secureCookies }));
  const sendLimits = {
    maxMessageBytes: config.MAILGATE_MAX_MESSAGE_BYTES,
    maxBatchBytes: config.MAILGATE_MAX_BATCH_BYTES,
  };
  // The send API takes messages with attachments (up to these limits); the rest of /api keeps a small body.
  app.use(messageBodyParsers(sendLimits));
  app.use('/api', jsonBody(2 * 1024 * 1024, express.json({ limit: '2mb', strict: true })));
  // The send API right after the headers and its body parsers: the busiest route, so its requests do not walk the
  // probes, static files, language, form parsing and session layers (each skips API paths anyway), nor every other
  // router's routes. Its guard, validation and error handler are the same wherever it is mounted.
  const web: WebContext = { auth: createAuthMiddleware({ apiKeys: deps.apiKeys }), eta };
  app.use(messagesRouter(web, { mail: deps.mail, keyRates: deps.keyRates, limits: sendLimits }));
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
  app.use(languageRouter({ secureCookies: config.secureCookies }));
  app.use(languageMiddleware());
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
  app.use(notificationBanners(deps.notify));
  const { audit, loginGuard, sessionGeneration, clock, mail, oauthAdmin } = deps;
  const reconnect = { config, links: deps.reconnectLinks, mail, tokens: deps.tokens };
  const panel = { tokens: deps.tokens, integrations: deps.oauthIntegrations, warnings: oauthAdmin.warnings };
  app.use(outgoingMailBanner(mail.servers));
  app.use(openApiRouter());
  app.use(loginRouter(web, { config, audit, loginGuard, sessionGeneration, clock }));
  app.use(accountRouter(web, { audit, loginGuard, users: deps.users, sessionGeneration, clock }));
  if (deps.firstAdminSetup) {
    const attempts = deps.store.createRateLimiter({
      keyPrefix: 'setup_ip',
      points: 10,
      durationSec: 15 * 60,
      blockDurationSec: 15 * 60,
    });
    app.use(setupRouter(web, { setup: deps.firstAdminSetup, audit, sessionGeneration, attempts, clock }));
  }
  app.use(
    apiKeysRouter(web, { apiKeys: deps.apiKeys, servers: mail.servers, handoff: new KeyHandoff(deps.keyring), config }),
  );
  app.use(
    auditRouter(web, {
      audit,
      names: {
        servers: () => mail.servers.list(),
        integrations: async () => (await deps.oauthIntegrations.list()).map((d) => ({ id: d.id, name: d.value.name })),
        apiKeys: () => deps.apiKeys.list(),
      },
    }),
  );
  app.use(encryptionKeysRouter(web, { keyRotation: deps.keyRotation }));
  app.use(
    smtpServersRouter(
      web,
      { config, audit, mail, lastTests: createLastTests(deps.store) },
      {
        oauthPanel: async (server) => ({
          ...(await oauthPanelData(panel, server)),
          reconnect: await reconnectPanelData(reconnect, server),
        }),
        oauthStatus: async (serverId) => (await deps.tokens.get(serverId))?.value.status ?? null,
        oauthFacts: async (server) => {
          const [integration, grant] = await Promise.all([
            server.oauthIntegrationId ? deps.oauthIntegrations.find(server.oauthIntegrationId) : null,
            deps.tokens.get(server.id),
          ]);
          // Read off the integration itself: the servers list asks this for each of its rows, and collecting every
          // OAuth warning per row cost a page of 50 servers 50 reads of the warning indexes and their documents.
          const expiresAt = integration?.value.secretExpiresAt;
          const expired = expiresAt ? secretExpiryOf(expiresAt) < (deps.clock ?? Date.now)() : false;
          return {
            grantStatus: grant?.value.status ?? null,
            integrationProblem: !integration || integration.value.misconfigured !== null || expired,
          };
        },
        integrations: async (chosen) => {
          const fetched = await deps.oauthIntegrations.page({ limit: INTEGRATION_CHOICES + 1 });
          const first = fetched.slice(0, INTEGRATION_CHOICES);
          const extra =
            chosen && !first.some((d) => d.id === chosen) ? await deps.oauthIntegrations.find(chosen) : null;
          const choices = [...first, ...(extra ? [extra] : [])].map((d) => ({ id: d.id, name: d.value.name }));
          return { choices, more: fetched.length > INTEGRATION_CHOICES };
        },
        warnings: oauthAdmin.warnings,
      },
    ),
  );
  app.use(serverTransportRouter(web, { mail }));
  app.use(mailQueueRouter(web, { mail }));
  app.use(notificationsRouter(web, { notify: deps.notify }));
  app.use(
    oauthIntegrationsRouter(web, {
      config,
      integrations: deps.oauthIntegrations,
      warnings: oauthAdmin.warnings,
      rotateClientSecret: oauthAdmin.rotateClientSecret,
    }),
  );
  // Before the OAuth callback router: it answers the callbacks of reconnect links and passes on the rest.
  app.use(reconnectRouter(web, reconnect));
  app.use(
    oauthCallbackRouter(web, {
      config,
      log,
      authorize: deps.authorize,
      tokens: deps.tokens,
      disconnect: oauthAdmin.disconnect,
    }),
  );

  app.use(notFound);
  app.use(redactLinkPaths);
  app.use(createErrorHandler(log, eta));
  return app;
}
