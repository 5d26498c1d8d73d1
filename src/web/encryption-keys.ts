import { Router } from 'express';
import { rotateEncryptionKeys } from '../admin/key-rotation.js';
import { keyUsage, MissingEncryptionKeyError } from '../crypto/rotation.js';
import { AppError } from '../errors.js';
import { actorOf } from './auth.js';
import type { WebContext } from './context.js';

const ROTATION_LOCK = 'encryption-key-rotation';
const ROTATION_LOCK_TTL_MS = 15 * 60_000;

/**
 * Encryption key status and rotation over the API. `npx mailgate keys rotate` is the usual way; this is
 * the way on the embedded store, whose data folder serves only the running process. One run at a time
 * across every instance (a store lock).
 */
export function encryptionKeysRouter({ deps, auth }: WebContext): Router {
  const router = Router();

  router.get('/api/v1/encryption-keys', auth.api('admin'), async (_req, res) => {
    const usage = await keyUsage(deps.store, deps.keyring);
    res.json({
      activeKeyId: deps.keyring.activeKeyId,
      documents: usage.documents,
      sealedValues: usage.sealedValues,
      keys: Object.entries(usage.perKey).map(([id, values]) => ({
        id,
        active: id === deps.keyring.activeKeyId,
        configured: deps.keyring.has(id),
        values,
        safeToRemove: deps.keyring.has(id) && id !== deps.keyring.activeKeyId && values === 0,
      })),
    });
  });

  router.post('/api/v1/encryption-keys/rotate', auth.api('admin'), async (_req, res) => {
    const lock = await deps.store.acquireLock(ROTATION_LOCK, ROTATION_LOCK_TTL_MS);
    if (!lock) throw new AppError('conflict', { message: 'A key rotation is already running.' });
    try {
      const result = await rotateEncryptionKeys(deps, actorOf(res));
      res.json({
        activeKeyId: deps.keyring.activeKeyId,
        scannedDocuments: result.scanned,
        resealed: result.resealed,
        documentsWritten: result.documentsWritten,
        failures: result.failures,
        valuesPerKey: result.perKeyAfter,
        durationMs: result.durationMs,
      });
    } catch (err) {
      if (err instanceof MissingEncryptionKeyError)
        throw new AppError('conflict', { message: err.message, cause: err });
      throw err;
    } finally {
      await lock.release();
    }
  });

  return router;
}
