import type { Keyring } from '../crypto/keyring.js';
import {
  assertAllKeysPresent,
  MissingEncryptionKeyError,
  rotateKeys,
  type RotateOptions,
  type RotationResult,
} from '../crypto/rotation.js';
import type { Documents, StoreLifecycle } from '../store/store.js';
import type { Actor, AuditRecorder } from './types.js';

/**
 * An encryption key rotation run with its audit trail: refused (and audited) when a stored value needs
 * a key that is not configured, audited with its outcome and counts when it ran. The CLI and the API
 * (for the embedded store, whose data folder serves one process) both call this.
 */
export async function rotateEncryptionKeys(
  deps: { store: Documents & Pick<StoreLifecycle, 'compact'>; keyring: Keyring; audit: AuditRecorder },
  actor: Actor,
  options: RotateOptions = {},
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
