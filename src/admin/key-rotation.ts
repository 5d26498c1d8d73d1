import type { Keyring } from '../crypto/keyring.js';
import {
  assertAllKeysPresent,
  keyUsage,
  MissingEncryptionKeyError,
  rotateKeys,
  type RotateOptions,
  type RotationResult,
} from '../crypto/rotation.js';
import { AppError } from '../errors.js';
import type { Documents, Lock, Locks, StoreLifecycle } from '../store/store.js';
import type { Actor, AuditRecorder } from './types.js';

/** One rotation at a time across every instance and the CLI: this store lock is taken by whoever rotates. */
export const KEY_ROTATION_LOCK = 'encryption-key-rotation';
const DEFAULT_LOCK_TTL_MS = 60_000;

export interface KeyRotationDeps {
  store: Documents & Locks & Pick<StoreLifecycle, 'compact'>;
  keyring: Keyring;
  audit: AuditRecorder;
  /**
   * How long the lock outlives a rotation process that dies; a running rotation extends it every third of
   * this, so a long rotation never loses it. Default one minute.
   */
  lockTtlMs?: number;
}

export interface EncryptionKeyStatus {
  activeKeyId: string;
  documents: number;
  sealedValues: number;
  keys: { id: string; active: boolean; configured: boolean; values: number; safeToRemove: boolean }[];
}

/**
 * Encryption key status and rotation, for the API and `mailgate keys rotate` alike. A rotation holds the
 * store lock KEY_ROTATION_LOCK while it runs; a second one (another instance, or the CLI against the same
 * store) is refused with a conflict instead of re-sealing the same documents at the same time.
 */
export class KeyRotationService {
  constructor(private readonly deps: KeyRotationDeps) {}

  /** The key that seals new values (the first of the key list). */
  get activeKeyId(): string {
    return this.deps.keyring.activeKeyId;
  }

  async status(): Promise<EncryptionKeyStatus> {
    const { store, keyring } = this.deps;
    const usage = await keyUsage(store, keyring);
    return {
      activeKeyId: keyring.activeKeyId,
      documents: usage.documents,
      sealedValues: usage.sealedValues,
      keys: Object.entries(usage.perKey).map(([id, values]) => ({
        id,
        active: id === keyring.activeKeyId,
        configured: keyring.has(id),
        values,
        safeToRemove: keyring.has(id) && id !== keyring.activeKeyId && values === 0,
      })),
    };
  }

  /**
   * Re-seals every value off the active key, under the rotation lock. Throws AppError `conflict`, having
   * changed nothing, when a rotation is already running or when a stored value needs a key that is not
   * configured (that refusal is audited). If the lock is lost anyway (the store was unreachable for longer
   * than its lifetime) the run stops between documents and reports itself interrupted.
   */
  async rotate(actor: Actor, options: RotateOptions = {}): Promise<RotationResult> {
    const ttlMs = this.deps.lockTtlMs ?? DEFAULT_LOCK_TTL_MS;
    const lock = await this.deps.store.acquireLock(KEY_ROTATION_LOCK, ttlMs);
    if (!lock)
      throw new AppError('conflict', {
        message:
          'A key rotation is already running (from the API or mailgate keys rotate); run it again once that one has finished.',
      });
    const held = keepLock(lock, ttlMs);
    try {
      const signal = options.signal ? AbortSignal.any([options.signal, held.lost]) : held.lost;
      return await rotateEncryptionKeys(this.deps, actor, { ...options, signal });
    } catch (err) {
      if (err instanceof MissingEncryptionKeyError)
        throw new AppError('conflict', { message: err.message, cause: err });
      throw err;
    } finally {
      held.stop();
      await lock.release().catch(() => undefined);
    }
  }
}

/** Extends `lock` every third of its lifetime until stopped; `lost` aborts when an extension fails. */
function keepLock(lock: Lock, ttlMs: number): { lost: AbortSignal; stop(): void } {
  const lost = new AbortController();
  let extending = false;
  const timer = setInterval(
    () => {
      if (extending || lost.signal.aborted) return;
      extending = true;
      lock
        .extend(ttlMs)
        .then((ok) => {
          if (!ok) lost.abort();
        })
        .catch(() => lost.abort())
        .finally(() => (extending = false));
    },
    Math.max(1, Math.floor(ttlMs / 3)),
  );
  timer.unref();
  return { lost: lost.signal, stop: () => clearInterval(timer) };
}

/** A rotation run with its audit trail: refused (and audited) when a needed key is missing, audited with its outcome and counts when it ran. */
async function rotateEncryptionKeys(
  deps: KeyRotationDeps,
  actor: Actor,
  options: RotateOptions,
): Promise<RotationResult> {
  const { store, keyring, audit } = deps;
  const base = { actor, action: 'keys.rotate', target: 'encryption-keys' } as const;
  try {
    await assertAllKeysPresent(store, keyring);
  } catch (err) {
    if (err instanceof MissingEncryptionKeyError) {
      await audit.record({
        ...base,
        outcome: 'failure',
        detail: { reason: 'missing_keys', missingKeyIds: err.missing.map((m) => m.keyId) },
      });
    }
    throw err;
  }
  let result: RotationResult;
  try {
    result = await rotateKeys(store, keyring, options);
    // The old ciphertexts are superseded now; on the file store they would stay in the journals until a rewrite.
    await store.compact();
  } catch (err) {
    await audit
      .record({
        ...base,
        outcome: 'failure',
        detail: { activeKeyId: keyring.activeKeyId, error: (err as Error).message.slice(0, 300) },
      })
      .catch(() => undefined);
    throw err;
  }
  await audit.record({
    ...base,
    outcome: result.aborted || result.failures.length > 0 ? 'failure' : 'success',
    detail: {
      activeKeyId: keyring.activeKeyId,
      scannedDocuments: result.scanned,
      resealed: result.resealed,
      failed: result.failures.length,
      interrupted: result.aborted,
      valuesPerKeyAfter: Object.entries(result.perKeyAfter).map(([kid, n]) => `${kid}=${n}`),
    },
  });
  return result;
}
