import { existsSync } from 'node:fs';
import os from 'node:os';
import type { Actor } from '../admin/types.js';
import { ConfigError, loadConfig, type Config } from '../config.js';
import { Keyring } from '../crypto/keyring.js';
import { readLocalSecrets } from '../crypto/local-secrets.js';
import { AppError } from '../errors.js';
import { openStore } from '../store/open-store.js';
import type { Store } from '../store/store.js';
import { CliError, EXIT, type CliIO } from './types.js';

/** What most commands need: the configuration, the store it names, and the encryption keys. */
export interface CliContext {
  config: Config;
  store: Store;
  /** Null on an embedded install that has never started (no key file yet, nothing sealed). */
  keyring: Keyring | null;
  /** Where the keys came from, for messages. */
  keySource: string;
}

export function cliConfig(io: CliIO): Config {
  try {
    return loadConfig(io.env);
  } catch (err) {
    if (err instanceof ConfigError) throw new CliError(err.message, EXIT.unusable);
    throw err;
  }
}

/**
 * Loads the configuration exactly as the service does and opens its store; fails fast, before anything
 * is written, when the configuration is bad or the store is unreachable (Redis down, or the embedded
 * data folder in use by a running mailgate). The CLI never creates the embedded key file.
 */
export async function openCliContext(io: CliIO): Promise<CliContext> {
  const config = cliConfig(io);
  let keyring: Keyring | null = null;
  let keySource = 'MAILGATE_ENCRYPTION_KEYS';
  if (config.encryptionKeys) {
    keyring = new Keyring(config.encryptionKeys);
  } else {
    const local = await readLocalSecrets(config.MAILGATE_DATA_DIR).catch((err: unknown) => {
      throw new CliError((err as Error).message, EXIT.unusable);
    });
    keySource = local?.path ?? `${config.MAILGATE_DATA_DIR}/secrets.json (not created yet)`;
    if (local) keyring = new Keyring(local.encryptionKeys);
  }
  if (!config.REDIS_URL && !existsSync(config.MAILGATE_DATA_DIR)) {
    // Opening the file store would create an empty one; a typo in MAILGATE_DATA_DIR should not look like success.
    throw new CliError(
      `There is no mailgate data folder at ${config.MAILGATE_DATA_DIR} (set MAILGATE_DATA_DIR, or REDIS_URL for Redis).`,
      EXIT.unusable,
    );
  }
  let store: Store;
  try {
    store = await openStore(config);
  } catch (err) {
    const where = config.REDIS_URL ? 'Redis (REDIS_URL)' : `the data folder ${config.MAILGATE_DATA_DIR}`;
    throw new CliError(
      `Cannot open the store in ${where}: ${(err as Error).message}\nNothing was changed.`,
      EXIT.unusable,
    );
  }
  return { config, store, keyring, keySource };
}

/** Opens the store, runs `fn`, always closes the store; AppErrors become plain messages. */
export async function withCliContext<T>(io: CliIO, fn: (ctx: CliContext) => Promise<T>): Promise<T> {
  const ctx = await openCliContext(io);
  try {
    return await fn(ctx);
  } catch (err) {
    if (err instanceof AppError) {
      const details = err.details.map((d) => `\n  ${d.field ? `${d.field}: ` : ''}${d.message}`).join('');
      throw new CliError(`${err.message}${details}`, EXIT.failed);
    }
    throw err;
  } finally {
    await ctx.store.close();
  }
}

/** Who acts from the command line, for the audit log: `cli:<operating-system user>`. */
export function cliActor(): Actor {
  let name = 'unknown';
  try {
    name = os.userInfo().username || 'unknown';
  } catch {
    // No passwd entry (some containers): keep "unknown".
  }
  return { type: 'cli', id: name };
}
