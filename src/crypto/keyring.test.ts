import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { Keyring, isSealed, sealedKeyId } from './keyring.js';

const k1 = { id: 'k1', key: randomBytes(32) };
const k2 = { id: 'k2', key: randomBytes(32) };
const ctx = { collection: 'smtp_servers', id: 'srv_1', field: 'password' };

function flip(sealed: string, part: number): string {
  const parts = sealed.split('.');
  const bytes = Buffer.from(parts[part]!, 'base64url');
  bytes[0] = bytes[0]! ^ 0x01;
  parts[part] = bytes.toString('base64url');
  return parts.join('.');
}

describe('Keyring', () => {
  it('seals with a fresh IV and opens the plaintext back', () => {
    const ring = new Keyring([k1]);
    const a = ring.seal('canary-secret-123', ctx);
    const b = ring.seal('canary-secret-123', ctx);
    expect(a).not.toBe(b);
    expect(a).not.toContain('canary');
    expect(isSealed(a)).toBe(true);
    expect(sealedKeyId(a)).toBe('k1');
    expect(ring.open(a, ctx)).toBe('canary-secret-123');
  });

  it.each([
    ['IV', 2],
    ['ciphertext', 3],
    ['tag', 4],
  ])('refuses a value with a flipped bit in the %s', (_name, part) => {
    const ring = new Keyring([k1]);
    const sealed = ring.seal('secret', ctx);
    expect(() => ring.open(flip(sealed, part), ctx)).toThrow(/authentication failed/);
  });

  it('refuses a ciphertext moved to another record or field', () => {
    const ring = new Keyring([k1]);
    const sealed = ring.seal('secret', ctx);
    expect(() => ring.open(sealed, { ...ctx, id: 'srv_2' })).toThrow(/another record/);
    expect(() => ring.open(sealed, { ...ctx, field: 'clientSecret' })).toThrow(/another record/);
  });

  it('refuses an unknown key id, naming it', () => {
    const sealed = new Keyring([k2]).seal('secret', ctx);
    expect(() => new Keyring([k1]).open(sealed, ctx)).toThrow(/key "k2", which is not in MAILGATE_ENCRYPTION_KEYS/);
  });

  it('refuses a truncated tag', () => {
    const ring = new Keyring([k1]);
    const parts = ring.seal('secret', ctx).split('.');
    parts[4] = Buffer.from(parts[4]!, 'base64url').subarray(0, 12).toString('base64url');
    expect(() => ring.open(parts.join('.'), ctx)).toThrow(/wrong length/);
  });

  it('refuses a key id swapped in the clear part', () => {
    const ring = new Keyring([k1, { id: 'k9', key: k1.key }]);
    const sealed = ring.seal('secret', ctx).replace('.k1.', '.k9.');
    expect(() => ring.open(sealed, ctx)).toThrow(/authentication failed/);
  });

  it('opens values of older keys and reseals them to the active key', () => {
    const old = new Keyring([k1]).seal('secret', ctx);
    const ring = new Keyring([k2, k1]);
    const moved = ring.reseal(old, ctx);
    expect(sealedKeyId(moved)).toBe('k2');
    expect(ring.open(moved, ctx)).toBe('secret');
    expect(ring.reseal(moved, ctx)).toBe(moved);
  });
});
