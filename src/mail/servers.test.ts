import { describe, expect, it } from 'vitest';
import {
  createServerInput,
  defaultPort,
  effectiveTimeout,
  isLoopbackHost,
  plaintextAuthProblem,
  updateServerInput,
} from './servers.js';

describe('server field semantics', () => {
  it('blank port → 25 / 465; blank timeout → 10000; 0 or negative → no timeout', () => {
    expect(defaultPort('smtp')).toBe(25);
    expect(defaultPort('smtps')).toBe(465);
    expect(effectiveTimeout(null)).toBe(10_000);
    expect(effectiveTimeout(0)).toBe(0);
    expect(effectiveTimeout(-5)).toBe(0);
    expect(effectiveTimeout(2500)).toBe(2500);
  });
  it('plaintext AUTH only to loopback', () => {
    expect(isLoopbackHost('127.0.0.1')).toBe(true);
    expect(isLoopbackHost('localhost')).toBe(true);
    expect(isLoopbackHost('[::1]')).toBe(true);
    expect(isLoopbackHost('128.0.0.1')).toBe(false);
    expect(isLoopbackHost('localhost.example.com')).toBe(false);
    expect(
      plaintextAuthProblem({ protocol: 'smtp', tls: false, authMethod: 'basic', host: 'smtp.example.com' }),
    ).toMatch(/needs TLS/);
    expect(
      plaintextAuthProblem({ protocol: 'smtp', tls: true, authMethod: 'basic', host: 'smtp.example.com' }),
    ).toBeNull();
    expect(
      plaintextAuthProblem({ protocol: 'smtps', tls: false, authMethod: 'oauth2', host: 'smtp.example.com' }),
    ).toBeNull();
    expect(
      plaintextAuthProblem({ protocol: 'smtp', tls: false, authMethod: 'none', host: 'smtp.example.com' }),
    ).toBeNull();
    expect(plaintextAuthProblem({ protocol: 'smtp', tls: false, authMethod: 'basic', host: '127.0.0.1' })).toBeNull();
  });
  it('form strings: blank is not given, checkboxes, numbers; unknown fields rejected', () => {
    const parsed = createServerInput.parse({
      name: ' Relay ',
      fromAddress: 'a@example.com',
      host: 'smtp.example.com',
      port: '',
      timeoutMs: '-1',
      tls: 'on',
      description: '',
    });
    expect(parsed).toMatchObject({ name: 'Relay', port: null, timeoutMs: -1, tls: true, description: null });
    expect(createServerInput.safeParse({ name: 'x', fromAddress: 'a@example.com', bogus: 1 }).success).toBe(false);
    expect(createServerInput.safeParse({ name: 'x', fromAddress: 'a@example.com', port: '70000' }).success).toBe(false);
    expect(
      createServerInput.safeParse({ name: 'x', fromAddress: 'a@example.com', emailPrefix: '[x]\r\nBcc: y' }).success,
    ).toBe(false);
    expect(updateServerInput.safeParse({ serviceProvider: 'gmail' }).success).toBe(false);
    expect(updateServerInput.parse({ changePassword: '', password: '' })).toMatchObject({
      changePassword: false,
      password: undefined,
    });
  });
});
