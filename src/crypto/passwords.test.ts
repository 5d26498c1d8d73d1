import { describe, expect, it } from 'vitest';
import { createDummyVerifier, hashPassword, verifyPassword } from './passwords.js';

describe('password hashing (scrypt N=2^17, r=8, p=1)', () => {
  it('verifies the right password, refuses a wrong one, salts every hash', async () => {
    const hash = await hashPassword('correct horse battery');
    expect(hash).toMatch(/^scrypt\$17\$8\$1\$[A-Za-z0-9_-]{22}\$[A-Za-z0-9_-]{43}$/);
    expect(await verifyPassword('correct horse battery', hash)).toBe(true);
    expect(await verifyPassword('correct horse batterY', hash)).toBe(false);
    expect(await verifyPassword('', hash)).toBe(false);
    expect(await hashPassword('correct horse battery')).not.toBe(hash);
  });

  it('treats Unicode-equivalent spellings as the same password', async () => {
    const hash = await hashPassword('caf\u00e9-password');
    expect(await verifyPassword('cafe\u0301-password', hash)).toBe(true);
  });

  it('answers false, never throws, for a damaged or foreign stored hash', async () => {
    for (const stored of [
      '',
      'plain',
      '$2b$12$abcdefghijklmnopqrstuv',
      'scrypt$17$8$1$c2FsdA$',
      'scrypt$99$8$1$c2FsdHNhbHRzYWx0$' + 'A'.repeat(43),
    ]) {
      expect(await verifyPassword('whatever-password', stored)).toBe(false);
    }
  });

  it('the dummy verifier for unknown emails costs about as much as a real check, from the first call', async () => {
    const hash = await hashPassword('some-password-123');
    const dummy = createDummyVerifier();
    const t0 = performance.now();
    await verifyPassword('wrong-password-123', hash);
    const real = performance.now() - t0;
    const t1 = performance.now();
    expect(await dummy('wrong-password-123')).toBe(false);
    const fake = performance.now() - t1;
    expect(fake).toBeGreaterThan(real * 0.3);
    expect(fake).toBeLessThan(real * 3);
  });
});
