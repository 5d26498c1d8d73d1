import { AppError } from '../errors.js';
import { createDummyVerifier, hashPassword, verifyPassword } from '../crypto/passwords.js';
import { VersionConflictError, type Documents } from '../store/store.js';
import type { Role } from './types.js';

/**
 * Admin accounts. A user is keyed by the lower-cased email, which makes "create unless it exists" one
 * compare-and-set write on both stores. Only the scrypt hash of the password is stored.
 */

export const USERS = 'users';
export const MIN_PASSWORD_LENGTH = 12;

export interface UserRecord {
  email: string;
  role: Role;
  passwordHash: string;
  createdAt: string;
}

export interface User {
  id: string;
  email: string;
  role: Role;
  createdAt: string;
}

export function normalizeEmail(email: string): string {
  return email.trim().toLowerCase();
}

function toUser(record: UserRecord): User {
  return { id: record.email, email: record.email, role: record.role, createdAt: record.createdAt };
}

export class UserService {
  readonly #verifyDummy = createDummyVerifier();

  constructor(
    private readonly store: Documents,
    private readonly now: () => number = Date.now,
  ) {}

  async create(input: { email: string; password: string; role: Role }): Promise<User> {
    const email = normalizeEmail(input.email);
    if (input.password.length < MIN_PASSWORD_LENGTH) {
      throw new AppError('validation_failed', { details: [{ field: 'password', message: `must be at least ${MIN_PASSWORD_LENGTH} characters` }] });
    }
    const record: UserRecord = { email, role: input.role, passwordHash: await hashPassword(input.password), createdAt: new Date(this.now()).toISOString() };
    try {
      await this.store.put(USERS, email, record, { ifVersion: 0 });
    } catch (err) {
      if (err instanceof VersionConflictError) throw new AppError('already_exists', { message: `A user with the email ${email} already exists.` });
      throw err;
    }
    return toUser(record);
  }

  async setPassword(email: string, password: string): Promise<void> {
    if (password.length < MIN_PASSWORD_LENGTH) {
      throw new AppError('validation_failed', { details: [{ field: 'password', message: `must be at least ${MIN_PASSWORD_LENGTH} characters` }] });
    }
    const doc = await this.store.get<UserRecord>(USERS, normalizeEmail(email));
    if (!doc) throw new AppError('not_found', { message: 'No such user.' });
    await this.store.put(USERS, doc.id, { ...doc.value, passwordHash: await hashPassword(password) }, { ifVersion: doc.version });
  }

  async get(id: string): Promise<User | null> {
    const doc = await this.store.get<UserRecord>(USERS, normalizeEmail(id));
    return doc ? toUser(doc.value) : null;
  }

  async list(): Promise<User[]> {
    return (await this.store.list<UserRecord>(USERS)).map((d) => toUser(d.value));
  }

  async count(): Promise<number> {
    return (await this.store.list<UserRecord>(USERS)).length;
  }

  /** The user when email and password match; null otherwise, in about the same time either way. */
  async verifyLogin(email: string, password: string): Promise<User | null> {
    const doc = await this.store.get<UserRecord>(USERS, normalizeEmail(email));
    if (!doc) {
      await this.#verifyDummy(password);
      return null;
    }
    return (await verifyPassword(password, doc.value.passwordHash)) ? toUser(doc.value) : null;
  }

  /**
   * Creates the first sysadmin from MAILGATE_ADMIN_EMAIL / MAILGATE_ADMIN_PASSWORD when there is no user
   * at all; never touches existing users (changing the variables later does not reset a password).
   */
  async ensureFirstAdmin(email: string | undefined, password: string | undefined): Promise<User | null> {
    if (!email || !password) return null;
    if ((await this.count()) > 0) return null;
    try {
      return await this.create({ email, password, role: 'sysadmin' });
    } catch (err) {
      // Another instance created it at the same moment.
      if (err instanceof AppError && err.code === 'already_exists') return null;
      throw err;
    }
  }
}
