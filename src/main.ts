import { createServer, type Server } from 'node:http';
import { createRequestListener } from './app.js';
import { ConfigError, loadConfig } from './config.js';
import { Keyring } from './crypto/keyring.js';
import { resolveSecrets } from './crypto/local-secrets.js';
import { MissingEncryptionKeyError, assertAllKeysPresent } from './crypto/rotation.js';
import { createLogger, type Logger } from './log.js';
import { createServices, type Services } from './services.js';
import { openStore } from './store/open-store.js';
import type { Store } from './store/store.js';

/**
 * The composition root: config → secrets and keyring → store → services → app → listen, and a graceful
 * shutdown on SIGTERM/SIGINT. Nothing imports this file.
 */

const SHUTDOWN_GRACE_MS = 25_000;

async function main(): Promise<void> {
  let config;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(`mailgate cannot start.\n${err.message}\nSee .env.example for every variable and what it expects.`);
      process.exit(1);
    }
    throw err;
  }
  const log = createLogger({ level: config.MAILGATE_LOG_LEVEL });

  const secrets = await resolveSecrets(config);
  if (secrets.local?.created) {
    log.warn(
      { file: secrets.local.path },
      `created ${secrets.local.path} (mode 0600) with a new encryption key and session secret for the embedded store; ` +
        'back it up with the data folder: without it the sealed secrets cannot be opened. For production, set MAILGATE_ENCRYPTION_KEYS and MAILGATE_SESSION_SECRETS.',
    );
  }
  for (const warning of secrets.local?.warnings ?? []) log.warn(warning);
  const keyring = new Keyring(secrets.encryptionKeys);

  const store = await openStore(config, log);
  try {
    await assertAllKeysPresent(store, keyring);
  } catch (err) {
    if (err instanceof MissingEncryptionKeyError) {
      // Plain text on stderr as well: this is read by a person at a console, not by a log pipeline.
      console.error(`mailgate cannot start.\n${err.message}`);
      log.fatal(
        { missingKeyIds: err.missing.map((m) => m.keyId) },
        'stored values need encryption keys that are not configured',
      );
      await store.close();
      process.exit(1);
    }
    throw err;
  }

  const services = await createServices({ config, store, keyring, log, sessionSecrets: secrets.sessionSecrets });
  const server = await new Promise<Server>((resolve, reject) => {
    const s = createServer(createRequestListener(services));
    s.once('error', reject);
    s.listen(config.PORT, config.MAILGATE_HOST, () => resolve(s));
  });
  await services.start();
  await services.submission.start();

  log.info(
    { host: config.MAILGATE_HOST, port: config.PORT, store: store.kind, baseUrl: config.MAILGATE_BASE_URL },
    `mailgate is listening; log in at ${config.MAILGATE_BASE_URL}/login`,
  );
  if (services.firstAdminSetup && (await services.firstAdminSetup.open())) {
    log.warn(
      `No admin exists yet. Open ${config.MAILGATE_BASE_URL}/setup and enter the one-time code from ` +
        `${config.MAILGATE_DATA_DIR}/first-admin-code.txt, or stop mailgate and run \`npx mailgate create-admin\`, ` +
        'or set MAILGATE_ADMIN_EMAIL and MAILGATE_ADMIN_PASSWORD (12+ characters) and restart.',
    );
  } else if ((await services.users.count()) === 0) {
    log.warn(
      'No admin exists yet. Create the first sysadmin with `npx mailgate create-admin`, or set MAILGATE_ADMIN_EMAIL and MAILGATE_ADMIN_PASSWORD (12+ characters) and restart.',
    );
  }

  installShutdown({ server, services, store, log });
}

function installShutdown({
  server,
  services,
  store,
  log,
}: {
  server: Server;
  services: Services;
  store: Store;
  log: Logger;
}): void {
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) {
      log.warn({ signal }, 'second signal: exiting now');
      process.exit(1);
    }
    stopping = true;
    log.info({ signal }, 'shutting down: no new requests, waiting for in-flight sends');
    const force = setTimeout(() => {
      log.error('shutdown took too long; exiting');
      process.exit(1);
    }, SHUTDOWN_GRACE_MS);
    force.unref();
    void (async () => {
      // The submission front answers 421 to new commands and finishes the messages it is receiving.
      await Promise.all([
        services.submission.stop(),
        new Promise<void>((resolve) => {
          server.close(() => resolve());
          server.closeIdleConnections();
        }),
      ]);
      await services.stop();
      await store.close();
      log.info('stopped');
      process.exit(0);
    })().catch((err: unknown) => {
      log.error({ err }, 'error during shutdown');
      process.exit(1);
    });
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

main().catch((err: unknown) => {
  console.error('mailgate failed to start:', err instanceof Error ? err.message : err);
  process.exit(1);
});
