import { VersionConflictError, type Documents } from '../store/store.js';
import { sealedKeyId, type Keyring, type SealContext } from './keyring.js';

/**
 * Encryption key rotation over the whole store. Sealed values are read only from the registered sealed
 * fields (sealed-fields.ts, `keyring.sealedFields`), never from other content, and are addressed by the
 * seal context convention written at the top of keyring.ts ({collection, id: document id, field: dotted
 * JSON path}).
 *
 * `rotateKeys` re-seals every value that is not on the active key, one document at a time with
 * compare-and-set, so a service writing the same document meanwhile never loses its write (the
 * document is re-read and re-sealed). Values already on the active key are left alone, which makes a
 * rerun after an interruption a no-op for the part already done.
 */

export interface KeyUsage {
  /** Values protected by each key id: every key of the keyring (0 when unused) plus any unknown id found. */
  perKey: Record<string, number>;
  /** Documents of the collections that hold sealed fields. */
  documents: number;
  sealedValues: number;
  /** One location (`collection/id#field`, never the value) per key id, for messages. */
  examples: Record<string, string>;
}

export interface RotationProgress {
  /** Documents looked at so far / in total. */
  documentsDone: number;
  documentsTotal: number;
  /** Values re-sealed so far / needing it when the run started. */
  resealed: number;
  toReseal: number;
}

export interface RotationFailure {
  location: string;
  reason: string;
}

export interface RotationResult {
  scanned: number;
  resealed: number;
  /** Documents rewritten (each may hold several values). */
  documentsWritten: number;
  /** Writes retried because a concurrent writer changed the document first. */
  conflictsRetried: number;
  /** Values that could not be opened (altered, or sealed for another record); left untouched. */
  failures: RotationFailure[];
  perKeyAfter: Record<string, number>;
  aborted: boolean;
  durationMs: number;
}

export interface RotateOptions {
  onProgress?: (progress: RotationProgress) => void;
  signal?: AbortSignal;
  /** Documents re-sealed at once. Default 8. */
  concurrency?: number;
}

/** The key id of a sealed value; a malformed one is counted under a name no real key can have. */
function keyIdOf(sealed: string): string {
  try {
    return sealedKeyId(sealed);
  } catch {
    return '(malformed)';
  }
}

function location(ctx: SealContext): string {
  return `${ctx.collection}/${ctx.id}#${ctx.field}`;
}

/** The store's collections that have registered sealed fields. */
async function sealedCollections(store: Documents, keyring: Keyring): Promise<string[]> {
  const present = new Set(await store.collections());
  return keyring.sealedFields.collections.filter((c) => present.has(c));
}

/** Counts sealed values per key id across the registered sealed fields of the store. */
export async function keyUsage(store: Documents, keyring: Keyring): Promise<KeyUsage> {
  const perKey: Record<string, number> = {};
  for (const kid of keyring.keyIds) perKey[kid] = 0;
  const examples: Record<string, string> = {};
  let documents = 0;
  let sealedValues = 0;
  for (const collection of await sealedCollections(store, keyring)) {
    for (const doc of await store.list(collection)) {
      documents++;
      keyring.sealedFields.forEach(collection, doc.value, (sealed, field) => {
        const kid = keyIdOf(sealed);
        perKey[kid] = (perKey[kid] ?? 0) + 1;
        examples[kid] ??= location({ collection, id: doc.id, field });
        sealedValues++;
      });
    }
  }
  return { perKey, documents, sealedValues, examples };
}

export class MissingEncryptionKeyError extends Error {
  constructor(readonly missing: { keyId: string; values: number; example: string }[]) {
    const lines = missing.map(
      (m) =>
        `  - key "${m.keyId}" protects ${m.values} stored value${m.values === 1 ? '' : 's'} (for example ${m.example})`,
    );
    super(
      `Stored values need encryption keys that are not configured:\n${lines.join('\n')}\n` +
        'Add each key back to MAILGATE_ENCRYPTION_KEYS (after the active key is fine), start mailgate, run ' +
        '`npx mailgate keys rotate`, and remove a key only when `npx mailgate keys status` shows it protects 0 values.',
    );
    this.name = 'MissingEncryptionKeyError';
  }
}

/** Throws MissingEncryptionKeyError naming every key id that some stored value needs but the keyring lacks. */
export async function assertAllKeysPresent(store: Documents, keyring: Keyring): Promise<KeyUsage> {
  const usage = await keyUsage(store, keyring);
  const missing = Object.entries(usage.perKey)
    .filter(([kid, count]) => count > 0 && !keyring.has(kid))
    .map(([keyId, values]) => ({ keyId, values, example: usage.examples[keyId] ?? '?' }));
  if (missing.length > 0) throw new MissingEncryptionKeyError(missing);
  return usage;
}

const MAX_CAS_RETRIES = 20;

export async function rotateKeys(
  store: Documents,
  keyring: Keyring,
  options: RotateOptions = {},
): Promise<RotationResult> {
  const started = Date.now();
  const active = keyring.activeKeyId;
  const failures: RotationFailure[] = [];
  const failed = new Set<string>();

  // The work list: documents holding at least one value off the active key, as they are now.
  const work: { collection: string; id: string }[] = [];
  let scanned = 0;
  let toReseal = 0;
  for (const collection of await sealedCollections(store, keyring)) {
    for (const doc of await store.list(collection)) {
      scanned++;
      let stale = 0;
      keyring.sealedFields.forEach(collection, doc.value, (sealed) => {
        if (keyIdOf(sealed) !== active) stale++;
      });
      if (stale > 0) {
        work.push({ collection, id: doc.id });
        toReseal += stale;
      }
    }
  }

  let resealed = 0;
  let documentsWritten = 0;
  let documentsDone = 0;
  let conflictsRetried = 0;
  const report = () => options.onProgress?.({ documentsDone, documentsTotal: work.length, resealed, toReseal });
  report();

  /** Re-seals one document, re-reading it whenever a concurrent writer got there first. */
  const rotateDocument = async (collection: string, id: string): Promise<void> => {
    for (let attempt = 0; ; attempt++) {
      const doc = await store.get(collection, id);
      if (!doc) return;
      let changed = 0;
      const next = keyring.sealedFields.map(collection, doc.value, (sealed, field) => {
        if (keyIdOf(sealed) === active) return sealed;
        const ctx = { collection, id, field };
        try {
          const out = keyring.reseal(sealed, ctx);
          changed++;
          return out;
        } catch (err) {
          const where = location(ctx);
          if (!failed.has(where)) {
            failed.add(where);
            failures.push({ location: where, reason: (err as Error).message });
          }
          return sealed;
        }
      });
      if (changed === 0) return;
      try {
        await store.put(collection, id, next, { ifVersion: doc.version });
        resealed += changed;
        documentsWritten++;
        return;
      } catch (err) {
        if (!(err instanceof VersionConflictError) || attempt >= MAX_CAS_RETRIES) throw err;
        conflictsRetried++;
      }
    }
  };

  let next = 0;
  let aborted = false;
  let fatal: { error: unknown } | null = null;
  const worker = async (): Promise<void> => {
    for (;;) {
      // Stops between documents only: a document is either fully re-sealed or untouched.
      if (fatal) return;
      if (options.signal?.aborted) {
        aborted = true;
        return;
      }
      const item = work[next++];
      if (!item) return;
      try {
        await rotateDocument(item.collection, item.id);
      } catch (error) {
        fatal ??= { error };
        return;
      }
      documentsDone++;
      report();
    }
  };
  // Every worker has stopped before this returns or throws: no write of this run lands after it.
  await Promise.all(Array.from({ length: Math.max(1, options.concurrency ?? 8) }, worker));
  if (fatal) throw (fatal as { error: unknown }).error;

  const after = await keyUsage(store, keyring);
  return {
    scanned,
    resealed,
    documentsWritten,
    conflictsRetried,
    failures,
    perKeyAfter: after.perKey,
    aborted,
    durationMs: Date.now() - started,
  };
}
