import { Router } from 'express';
import type { KeyRotationService } from '../admin/key-rotation.js';
import { actorOf } from './auth.js';
import type { WebContext } from './context.js';

/**
 * Encryption key status and rotation over the API. `npx mailgate keys rotate` is the usual way; this is
 * the way on the embedded store, whose data folder serves only the running process. The rotation service
 * holds a store lock while it runs, so an API rotation and a CLI rotation never overlap.
 */
export function encryptionKeysRouter(
  { auth }: WebContext,
  deps: { keyRotation: Pick<KeyRotationService, 'activeKeyId' | 'status' | 'rotate'> },
): Router {
  const router = Router();

  router.get('/api/v1/encryption-keys', auth.api('admin'), async (_req, res) => {
    res.json(await deps.keyRotation.status());
  });

  router.post('/api/v1/encryption-keys/rotate', auth.api('admin'), async (_req, res) => {
    const result = await deps.keyRotation.rotate(actorOf(res));
    res.json({
      activeKeyId: deps.keyRotation.activeKeyId,
      scannedDocuments: result.scanned,
      resealed: result.resealed,
      documentsWritten: result.documentsWritten,
      failures: result.failures,
      valuesPerKey: result.perKeyAfter,
      durationMs: result.durationMs,
    });
  });

  return router;
}
