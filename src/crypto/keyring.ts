import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import type { EncryptionKey } from '../config.js';
import { AppError } from '../errors.js';
import { SEALED_FIELDS, SealedFields } from './sealed-fields.js';
import { isSealed, SEALED_PREFIX, sealedKeyId } from './sealed-format.js';

/**
 * AES-256-GCM sealing of every secret at rest.
 *
 * A sealed value is the string `mg1.<kid>.<iv>.<ciphertext>.<tag>` (base64url parts): a random 96-bit IV,
 * a 128-bit tag that is checked for its length before use, and the key id in clear so the right key is
 * found. The associated data binds the key id and the record's identity (`collection/id#field`), so a
 * ciphertext copied into another record or field fails to open instead of yielding someone else's secret.
 *
 * THE SEAL CONTEXT CONVENTION (every service must follow it, or key rotation cannot re-seal its values):
 *   collection = the store collection the document is put in;
 *   id         = the document id passed to store.put;
 *   field      = the dotted JSON path of the sealed string inside the document value, e.g. `password`,
 *                `tokens.refreshToken`; array elements use their index (`secrets.0.value`).
 * Only the fields listed in sealed-fields.ts hold sealed values, and seal() refuses any other context.
 * `keys rotate` (src/crypto/rotation.ts) reads those fields and re-seals each value with exactly that
 * context. Consequences: a sealed value must be stored at the path it was sealed for (moving it, or
 * reordering an array holding it, means opening and sealing it again), and a document's sealed values
 * must not be sealed for another collection or id.
 */

const IV_BYTES = 12;
const TAG_BYTES = 16;

/** Where a sealed value lives; part of the associated data. */
export interface SealContext {
  collection: string;
  id: string;
  field: string;
}

export { isSealed, sealedKeyId };

function associatedData(kid: string, ctx: SealContext): Buffer {
  return Buffer.from(`${SEALED_PREFIX}|${kid}|${ctx.collection}/${ctx.id}#${ctx.field}`, 'utf8');
}

export interface KeyringOptions {
  /** The fields that may hold sealed values; default the product's SEALED_FIELDS. */
  sealedFields?: SealedFields;
}

export class Keyring {
  readonly #keys: ReadonlyMap<string, Buffer>;
  readonly activeKeyId: string;
  readonly sealedFields: SealedFields;

  constructor(keys: readonly EncryptionKey[], options: KeyringOptions = {}) {
    const first = keys[0];
    if (!first) throw new Error('Keyring needs at least one key');
    for (const k of keys) if (k.key.length !== 32) throw new Error(`key ${k.id} is ${k.key.length} bytes, expected 32`);
    this.#keys = new Map(keys.map((k) => [k.id, k.key]));
    this.activeKeyId = first.id;
    this.sealedFields = options.sealedFields ?? new SealedFields(SEALED_FIELDS);
  }

  get keyIds(): string[] {
    return [...this.#keys.keys()];
  }

  has(kid: string): boolean {
    return this.#keys.has(kid);
  }

  seal(plaintext: string, ctx: SealContext): string {
    // A value outside the registered fields would be invisible to key usage and rotation.
    if (!this.sealedFields.covers(ctx))
      throw new Error(`${ctx.collection}#${ctx.field} is not a registered sealed field (SEALED_FIELDS)`);
    const key = this.#keys.get(this.activeKeyId)!;
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', key, iv, { authTagLength: TAG_BYTES });
    cipher.setAAD(associatedData(this.activeKeyId, ctx));
    const ciphertext = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
    const tag = cipher.getAuthTag();
    return [
      SEALED_PREFIX,
      this.activeKeyId,
      iv.toString('base64url'),
      ciphertext.toString('base64url'),
      tag.toString('base64url'),
    ].join('.');
  }

  open(sealed: string, ctx: SealContext): string {
    const parts = sealed.split('.');
    if (parts.length !== 5 || parts[0] !== SEALED_PREFIX)
      throw cryptoError(ctx, 'the value is not in the sealed format');
    const [, kid = '', ivText = '', ctText = '', tagText = ''] = parts;
    const key = this.#keys.get(kid);
    if (!key) throw cryptoError(ctx, `it was sealed with key "${kid}", which is not in MAILGATE_ENCRYPTION_KEYS`);
    const iv = Buffer.from(ivText, 'base64url');
    const tag = Buffer.from(tagText, 'base64url');
    // GCM accepts truncated tags unless told otherwise; a short tag would weaken authentication.
    if (iv.length !== IV_BYTES || tag.length !== TAG_BYTES)
      throw cryptoError(ctx, 'the IV or tag has the wrong length');
    try {
      const decipher = createDecipheriv('aes-256-gcm', key, iv, { authTagLength: TAG_BYTES });
      decipher.setAAD(associatedData(kid, ctx));
      decipher.setAuthTag(tag);
      return Buffer.concat([decipher.update(Buffer.from(ctText, 'base64url')), decipher.final()]).toString('utf8');
    } catch (cause) {
      throw cryptoError(ctx, 'authentication failed (the value was altered or belongs to another record)', cause);
    }
  }

  /** Re-seals under the active key; returns the input unchanged when it already uses it. */
  reseal(sealed: string, ctx: SealContext): string {
    if (sealedKeyId(sealed) === this.activeKeyId) return sealed;
    return this.seal(this.open(sealed, ctx), ctx);
  }
}

function cryptoError(ctx: SealContext, why: string, cause?: unknown): AppError {
  return new AppError('crypto_failed', {
    message: `Cannot open the sealed ${ctx.field} of ${ctx.collection}/${ctx.id}: ${why}.`,
    cause,
    expose: false,
  });
}
