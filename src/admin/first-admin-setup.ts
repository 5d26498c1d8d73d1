import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { rm, writeFile } from 'node:fs/promises';
import { AppError } from '../errors.js';
import { VersionConflictError, type Documents } from '../store/store.js';
import type { User, UserService } from './users.js';

/**
 * First-run setup on the embedded store: while no user exists, /setup creates the first sysadmin for
 * whoever holds a one-time code. The code is written to a file in the data folder (mode 0600), never to
 * the log, so only someone with access to the machine can claim the installation. Only its hash is
 * stored; it expires after a day and is consumed by a compare-and-set delete, so it works once.
 */

const COLLECTION = 'settings';
const DOC_ID = 'first-admin-setup';
const CODE_TTL_MS = 24 * 3600_000;

interface SetupRecord {
  codeHash: string;
  expiresAt: number;
}

function hash(code: string): Buffer {
  return createHash('sha256').update(code, 'utf8').digest();
}

export class FirstAdminSetup {
  constructor(private readonly deps: { store: Documents; users: UserService; codeFile: string; now?: () => number }) {}

  private now(): number {
    return (this.deps.now ?? Date.now)();
  }

  /** Issues a fresh code and writes it to the code file when no user exists; returns false otherwise. */
  async open(): Promise<boolean> {
    if ((await this.deps.users.count()) > 0) return false;
    const code = randomBytes(18).toString('base64url');
    const record: SetupRecord = { codeHash: hash(code).toString('hex'), expiresAt: this.now() + CODE_TTL_MS };
    await writeFile(this.deps.codeFile, `${code}\n`, { mode: 0o600 });
    await this.deps.store.put(COLLECTION, DOC_ID, record);
    return true;
  }

  /** True while the setup page may be used: no user yet and an unexpired code. */
  async isOpen(): Promise<boolean> {
    const doc = await this.deps.store.get<SetupRecord>(COLLECTION, DOC_ID);
    return doc !== null && doc.value.expiresAt > this.now() && (await this.deps.users.count()) === 0;
  }

  async complete(code: string, email: string, password: string): Promise<User> {
    const doc = await this.deps.store.get<SetupRecord>(COLLECTION, DOC_ID);
    const wrong = () =>
      new AppError('forbidden', { message: 'The setup code is wrong or has expired. Restart mailgate for a new one.' });
    if (!doc || doc.value.expiresAt <= this.now() || (await this.deps.users.count()) > 0) throw wrong();
    const expected = Buffer.from(doc.value.codeHash, 'hex');
    const given = hash(code.trim());
    if (expected.length !== given.length || !timingSafeEqual(expected, given)) throw wrong();
    // Validate before consuming the code, so a too-short password does not burn it.
    if (password.length < 12)
      throw new AppError('validation_failed', {
        details: [{ field: 'password', message: 'must be at least 12 characters' }],
      });
    try {
      await this.deps.store.delete(COLLECTION, DOC_ID, { ifVersion: doc.version });
    } catch (err) {
      if (err instanceof VersionConflictError) throw wrong();
      throw err;
    }
    await rm(this.deps.codeFile, { force: true });
    return this.deps.users.create({ email, password, role: 'sysadmin' });
  }
}
