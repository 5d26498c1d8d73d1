import { describe, expect, it } from 'vitest';
import { diagnoseOAuthError } from './diagnose.js';
import type { Config } from '../config.js';
import { authorizationExtras, issuerFor, requestedScopes } from './providers/index.js';

describe('diagnoseOAuthError', () => {
  it.each([
    ['AADSTS700082: The refresh token has expired due to inactivity.', 'AADSTS700082', 'Re-authorize'],
    ['AADSTS50173: The provided grant has expired due to it being revoked', 'AADSTS50173', 'password'],
    ['AADSTS7000222: The provided client secret keys for app are expired.', 'AADSTS7000222', 'Rotate client secret'],
    ['AADSTS54005: OAuth2 Authorization code was already redeemed', 'AADSTS54005', 'Authorize again'],
  ])('maps %s', (description, code, advice) => {
    const d = diagnoseOAuthError({ provider: 'microsoft' }, 'invalid_grant', description);
    expect(d.code).toBe(code);
    expect(d.hint).toContain(advice);
  });

  it('explains Google apps in testing', () => {
    expect(
      diagnoseOAuthError(
        { provider: 'google', googleInTesting: true },
        'invalid_grant',
        'Token has been expired or revoked.',
      ).hint,
    ).toContain('7 days');
    expect(diagnoseOAuthError({ provider: 'google' }, 'invalid_grant', undefined).hint).toContain(
      'myaccount.google.com/permissions',
    );
  });

  it('treats outages as temporary and client errors as configuration', () => {
    expect(diagnoseOAuthError({ provider: 'google' }, 'timeout', undefined).hint).toContain('retries');
    expect(diagnoseOAuthError({ provider: 'custom' }, 'invalid_client', undefined).hint).toContain('client');
  });
});

describe('provider presets', () => {
  const config = {
    MAILGATE_GOOGLE_ISSUER: 'https://accounts.google.com',
    MAILGATE_MICROSOFT_AUTHORITY: 'https://login.microsoftonline.com',
  } as Config;
  it('builds issuers and the scope list', () => {
    expect(issuerFor(config, { provider: 'google' })).toBe('https://accounts.google.com');
    expect(issuerFor(config, { provider: 'microsoft', tenant: 'contoso.onmicrosoft.com' })).toBe(
      'https://login.microsoftonline.com/contoso.onmicrosoft.com/v2.0',
    );
    expect(requestedScopes(['https://outlook.office.com/SMTP.Send', 'offline_access', 'email'])).toEqual([
      'openid',
      'email',
      'https://outlook.office.com/SMTP.Send',
      'offline_access',
    ]);
    expect(authorizationExtras('google')).toEqual({ prompt: 'consent', access_type: 'offline' });
    expect(authorizationExtras('microsoft')).toEqual({ prompt: 'consent' });
  });
});
