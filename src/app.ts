import path from 'node:path';
import { fileURLToPath } from 'node:url';
import express, { type Express } from 'express';
import helmet from 'helmet';
import type { Config } from './config.js';
import type { Keyring } from './crypto/keyring.js';
import type { Logger } from './log.js';
import type { Metrics } from './metrics.js';
import type { Store } from './store/store.js';
import { createErrorHandler, notFound } from './web/error-handler.js';
import { healthRouter, type ReadinessCheck } from './web/health.js';
import { createRenderer } from './web/render.js';

/**
 * Everything the web layer needs, built by src/main.ts (or a test) and passed in: createApp has no
 * side effects beyond building the Express app.
 */
export interface AppDeps {
  config: Config;
  store: Store;
  keyring: Keyring;
  log: Logger;
  metrics: Metrics;
  readinessChecks?: ReadinessCheck[];
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
      const route = (req.route as { path?: string } | undefined)?.path ?? (res.statusCode === 404 ? 'unmatched' : req.baseUrl || 'other');
      end({ route });
      metrics.httpRequests.inc({ method: req.method, route, status: String(res.statusCode) });
    });
    next();
  });

  app.use(healthRouter({ store: deps.store, metrics, readinessChecks: deps.readinessChecks }));
  app.use('/static', express.static(publicDir, { index: false, maxAge: '1h' }));

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
  app.use('/api', express.json({ limit: '2mb', strict: true }));
  app.use(express.urlencoded({ extended: false, limit: '256kb', parameterLimit: 200 }));

  // Areas mount here, in this order: sessions/CSRF/login, then admin pages and the JSON API.

  app.use(notFound);
  app.use(createErrorHandler(log, eta));
  return app;
}
