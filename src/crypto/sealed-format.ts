import { AppError } from '../errors.js';

/** The shape of a sealed value, `mg1.<kid>.<iv>.<ciphertext>.<tag>`, readable without any key. */

export const SEALED_PREFIX = 'mg1';

/** Whether a string has the shape of a sealed value (it may still fail to open). */
export function isSealed(value: unknown): value is string {
  return typeof value === 'string' && value.startsWith(`${SEALED_PREFIX}.`) && value.split('.').length === 5;
}

/** The key id a sealed value was written with (no key needed). */
export function sealedKeyId(sealed: string): string {
  const parts = sealed.split('.');
  if (parts.length !== 5 || parts[0] !== SEALED_PREFIX || !parts[1])
    throw new AppError('crypto_failed', { message: 'not a sealed value' });
  return parts[1];
}
