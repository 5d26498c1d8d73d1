import { describe, expect, it } from 'vitest';
import { AppError } from '../errors.js';
import { fromAllowed, keyPolicy, serverForKey } from './key-policy.js';

describe('key policy checks', () => {
  it('fromAllowed matches whole addresses and *@domain, case-insensitively, and nothing else', () => {
    const policy = keyPolicy.parse({ allowedFrom: ['notify@example.com', '*@example.org'] });
    expect(fromAllowed(policy, 'Notify@Example.com')).toBe(true);
    expect(fromAllowed(policy, 'anyone@EXAMPLE.org')).toBe(true);
    expect(fromAllowed(policy, 'other@example.com')).toBe(false);
    expect(fromAllowed(policy, 'a@sub.example.org')).toBe(false);
    expect(fromAllowed(policy, 'a@evilexample.org')).toBe(false);
    expect(fromAllowed(undefined, 'a@b.example')).toBe(true);
  });

  it('serverForKey uses the bound server and refuses another one with 403', () => {
    expect(serverForKey({ serverId: 'srv_a' }, undefined)).toBe('srv_a');
    expect(serverForKey({ serverId: 'srv_a' }, 'srv_a')).toBe('srv_a');
    expect(serverForKey({}, 'srv_b')).toBe('srv_b');
    expect(() => serverForKey({ serverId: 'srv_a' }, 'srv_b')).toThrow(AppError);
    try {
      serverForKey({ serverId: 'srv_a' }, 'srv_b');
    } catch (err) {
      expect((err as AppError).status).toBe(403);
    }
  });

  it('refuses entries that are neither an address nor *@domain', () => {
    for (const bad of ['*', '*@', 'a@', '*@-x.example', 'two words@example.com']) {
      expect(keyPolicy.safeParse({ allowedFrom: [bad] }).success, bad).toBe(false);
    }
  });
});
