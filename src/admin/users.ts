import { AppError } from '../errors.js';
import { createDummyVerifier, hashPassword, verifyPassword } from '../crypto/passwords.js';
import { VersionConflictError, type Documents } from '../store/store.js';
import { HashingGate } from './hashing-gate.js';
import type { Role } from './types.js';

/**
 * Admin accounts. A user is keyed by the lower-cased email, which makes "create unless it exists" one
 * compare-and-set write on both stores. Only the scrypt hash of the password is stored, and every hash goes
 * through one HashingGate. `sessionEpoch` is copied into a browser session at login and compared on every
 * request (the user is read anyway): raising it (new password, disabled account) ends that user's other
 * sessions on every instance.
 */

export const USERS = 'users';
export const MIN_PASSWORD_LENGTH = 12;

export interface UserRecord {
  email: string;
  role: Role;
  passwordHash: string;
  createdAt: string;
  /** Absent on records written before accounts could be disabled. */
  disabled?: boolean;
  sessionEpoch?: number;
}

export interface User {
  id: string;
  email: string;
  role: Role;
  createdAt: string;
  disabled: boolean;
  sessionEpoch: number;
}

export function normalizeEmail(email: string): string {
  return email.trim().toLowerCase();
}

function toUser(record: UserRecord): User {
  return {
    id: record.email,
    email: record.email,
    role: record.role,
    createdAt: record.createdAt,
    disabled: record.disabled === true,
    sessionEpoch: record.sessionEpoch ?? 0,
  };
}

function checkPasswordLength(password: string): void {
  if (password.length < MIN_PASSWORD_LENGTH) {
    throw new AppError('validation_failed', {
      details: [{ field: 'password', message: `must be at least ${MIN_PASSWORD_LENGTH} characters` }],
    });
  }
}

export class UserService {
  readonly #verifyDummy = createDummyVerifier();

  constructor(
    private readonly store: Documents,
    private readonly now: () => number = Date.now,
    private readonly hashing: HashingGate = new HashingGate(),
  ) {}

  /** Password hashes running and waiting in this process now. */
  get hashingLoad(): { running: number; waiting: number } {
    return this.hashing.load;
  }

  async create(input: { email: string; password: string; role: Role }): Promise<User> {
    const email = normalizeEmail(input.email);
    checkPasswordLength(input.password);
    const passwordHash = await this.hashing.run(email, () => hashPassword(input.password));
    const record: UserRecord = { email, role: input.role, passwordHash, createdAt: new Date(this.now()).toISOString() };
    try {
      await this.store.put(USERS, email, record, { ifVersion: 0 });
    } catch (err) {
      if (err instanceof VersionConflictError)
        throw new AppError('already_exists', { message: `A user with the email ${email} already exists.` });
      throw err;
    }
    return toUser(record);
  }

  /** A new password; every session of the user ends (the caller may carry its own over with the returned epoch). */
  async setPassword(email: string, password: string): Promise<User> {
    checkPasswordLength(password);
    const id = normalizeEmail(email);
    const passwordHash = await this.hashing.run(id, () => hashPassword(password));
    return this.#update(id, (record) => ({ ...record, passwordHash, sessionEpoch: (record.sessionEpoch ?? 0) + 1 }));
  }

  /**
   * A disabled user cannot log in and their sessions end at their next request; enabling lets them log in
   * again (old sessions stay ended). The last enabled sysadmin cannot be disabled: nobody could undo it but the CLI.
   */
  async setDisabled(email: string, disabled: boolean): Promise<User> {
    const id = normalizeEmail(email);
    if (disabled) {
      const target = await this.get(id);
      const otherSysadmins = (await this.list()).filter((u) => u.role === 'sysadmin' && !u.disabled && u.id !== id);
      if (target?.role === 'sysadmin' && !target.disabled && otherSysadmins.length === 0) {
        throw new AppError('conflict', {
          message: 'This is the last enabled sysadmin; enable or create another one first.',
        });
      }
    }
    return this.#update(id, (record) => ({
      ...record,
      disabled,
      sessionEpoch: (record.sessionEpoch ?? 0) + (disabled ? 1 : 0),
    }));
  }

  async #update(id: string, change: (record: UserRecord) => UserRecord): Promise<User> {
    for (;;) {
      const doc = await this.store.get<UserRecord>(USERS, id);
      if (!doc) throw new AppError('not_found', { message: 'No such user.' });
      const record = change(doc.value);
      try {
        await this.store.put(USERS, doc.id, record, { ifVersion: doc.version });
        return toUser(record);
      } catch (err) {
        if (!(err instanceof VersionConflictError)) throw err;
      }
    }
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

  /**
   * The user when email and password match and the account is enabled; null otherwise, in about the same
   * time either way (a disabled account's password is checked too, so the answer does not reveal it).
   * Throws HashingBusyError when too many checks are waiting already.
   */
  async verifyLogin(email: string, password: string): Promise<User | null> {
    const id = normalizeEmail(email);
    const doc = await this.store.get<UserRecord>(USERS, id);
    return this.hashing.run(id, async () => {
      if (!doc) return this.#verifyDummy(password).then(() => null);
      const matches = await verifyPassword(password, doc.value.passwordHash);
      return matches && doc.value.disabled !== true ? toUser(doc.value) : null;
    });
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
