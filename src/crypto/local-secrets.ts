import { randomBytes } from 'node:crypto';
import { chmod, link, mkdir, open, readFile, stat, unlink } from 'node:fs/promises';
import path from 'node:path';
import type { EncryptionKey } from '../config.js';

/**
 * Secrets of the embedded default: when MAILGATE_ENCRYPTION_KEYS or MAILGATE_SESSION_SECRETS is not set,
 * mailgate keeps its own in `<dataDir>/secrets.json` (file mode 0600, folder 0700), created on first
 * start with a random 32-byte key `local1` and a random session secret.
 *
 * The file may hold several keys (first seals, all open), in the same order as the environment variable,
 * so a key can be rotated without leaving the embedded mode. For production, copy the values into
 * MAILGATE_ENCRYPTION_KEYS / MAILGATE_SESSION_SECRETS (or their *_FILE variants) and back them up: data
 * sealed with a lost key cannot be recovered.
 */

export const LOCAL_SECRETS_FILE = 'secrets.json';

interface SecretsFile {
  encryptionKeys: { id: string; key: string }[];
  sessionSecrets: string[];
}

export interface LocalSecrets {
  encryptionKeys: EncryptionKey[];
  sessionSecrets: string[];
  /** Absolute path of the file. */
  path: string;
  /** True when this call created the file (main.ts says so once, with a backup hint). */
  created: boolean;
  /** Problems worth a warning, e.g. a file readable by other users. */
  warnings: string[];
}

const KEY_ID = /^[A-Za-z0-9_-]{1,32}$/;

function newSecrets(): SecretsFile {
  return {
    encryptionKeys: [{ id: 'local1', key: randomBytes(32).toString('base64') }],
    sessionSecrets: [randomBytes(32).toString('base64url')],
  };
}

function parse(file: string, text: string): Omit<LocalSecrets, 'path' | 'created' | 'warnings'> {
  const problems: string[] = [];
  let raw: Partial<SecretsFile>;
  try {
    raw = JSON.parse(text) as Partial<SecretsFile>;
  } catch {
    throw new Error(
      `The secrets file ${file} is not valid JSON. Restore it from a backup; values sealed with its keys cannot be opened without it.`,
    );
  }
  const encryptionKeys: EncryptionKey[] = [];
  const seen = new Set<string>();
  for (const [i, entry] of (Array.isArray(raw.encryptionKeys) ? raw.encryptionKeys : []).entries()) {
    const key = typeof entry?.key === 'string' ? Buffer.from(entry.key, 'base64') : Buffer.alloc(0);
    if (typeof entry?.id !== 'string' || !KEY_ID.test(entry.id))
      problems.push(`encryptionKeys[${i}]: id must be 1-32 of A-Z a-z 0-9 _ -`);
    else if (seen.has(entry.id)) problems.push(`encryptionKeys[${i}]: id "${entry.id}" appears more than once`);
    else if (key.length !== 32)
      problems.push(`encryptionKeys[${i}] (${entry.id}): key is ${key.length} bytes, expected 32 in base64`);
    else {
      seen.add(entry.id);
      encryptionKeys.push({ id: entry.id, key });
    }
  }
  if (encryptionKeys.length === 0 && problems.length === 0) problems.push('encryptionKeys: no key');
  const sessionSecrets = Array.isArray(raw.sessionSecrets)
    ? raw.sessionSecrets.filter((s): s is string => typeof s === 'string' && s.length >= 32)
    : [];
  if (sessionSecrets.length === 0)
    problems.push('sessionSecrets: expected at least one secret of 32 or more characters');
  if (problems.length > 0)
    throw new Error(`The secrets file ${file} is not usable:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
  return { encryptionKeys, sessionSecrets };
}

/** Reads `<dataDir>/secrets.json`, creating it (mode 0600) when it does not exist yet. */
export async function loadOrCreateLocalSecrets(dataDir: string): Promise<LocalSecrets> {
  const dir = path.resolve(dataDir);
  const file = path.join(dir, LOCAL_SECRETS_FILE);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  let created = false;
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    // Written completely under another name, then linked into place: link() fails when the file exists,
    // so two processes starting at once never overwrite each other's key, and no reader sees half a file.
    const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
    // Synced before it is linked and the folder after, whatever MAILGATE_FSYNC says: values sealed with this key
    // may reach the disk right after, and without the key they could never be opened again.
    const handle = await open(tmp, 'wx', 0o600);
    try {
      await handle.writeFile(`${JSON.stringify(newSecrets(), null, 2)}\n`);
      await handle.sync();
    } finally {
      await handle.close();
    }
    try {
      await link(tmp, file);
      const folder = await open(dir, 'r');
      await folder.sync().finally(() => folder.close());
      created = true;
    } catch (linkErr) {
      if ((linkErr as NodeJS.ErrnoException).code !== 'EEXIST') throw linkErr;
    } finally {
      await unlink(tmp).catch(() => undefined);
    }
    text = await readFile(file, 'utf8');
  }
  const secrets = parse(file, text);
  const warnings: string[] = [];
  const mode = (await stat(file)).mode & 0o777;
  if ((mode & 0o077) !== 0) {
    await chmod(file, 0o600);
    warnings.push(`${file} was readable by other users (mode ${mode.toString(8).padStart(4, '0')}); it is now 0600`);
  }
  const dirMode = (await stat(dir)).mode & 0o777;
  if (created && (dirMode & 0o077) !== 0) await chmod(dir, 0o700).catch(() => undefined);
  return { ...secrets, path: file, created, warnings };
}

/** Reads the secrets file without creating it; null when there is none yet. */
export async function readLocalSecrets(dataDir: string): Promise<Omit<LocalSecrets, 'created' | 'warnings'> | null> {
  const file = path.join(path.resolve(dataDir), LOCAL_SECRETS_FILE);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
  return { ...parse(file, text), path: file };
}

export interface ResolvedSecrets {
  encryptionKeys: EncryptionKey[];
  sessionSecrets: string[];
  /** The secrets file, when any value came from it (main.ts logs `created` once, with a backup hint). */
  local: LocalSecrets | null;
}

/**
 * The keys and session secrets to run with: the environment's when set, the embedded secrets file's
 * otherwise (created on first use). Config already refuses Redis without both variables, so the file is
 * only ever used by a single-process embedded install.
 */
export async function resolveSecrets(config: {
  MAILGATE_DATA_DIR: string;
  encryptionKeys: readonly EncryptionKey[] | undefined;
  sessionSecrets: readonly string[] | undefined;
}): Promise<ResolvedSecrets> {
  if (config.encryptionKeys && config.sessionSecrets) {
    return { encryptionKeys: [...config.encryptionKeys], sessionSecrets: [...config.sessionSecrets], local: null };
  }
  const local = await loadOrCreateLocalSecrets(config.MAILGATE_DATA_DIR);
  return {
    encryptionKeys: config.encryptionKeys ? [...config.encryptionKeys] : local.encryptionKeys,
    sessionSecrets: config.sessionSecrets ? [...config.sessionSecrets] : local.sessionSecrets,
    local,
  };
}
