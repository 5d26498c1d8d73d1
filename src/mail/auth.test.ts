import { describe, expect, it } from 'vitest';
import { pickSmtpAuth } from './auth.js';

describe('pickSmtpAuth', () => {
  it('none', () => {
    expect(pickSmtpAuth({ authMethod: 'none', username: 'x', password: 'y' }, null)).toEqual({ type: 'none' });
  });
  it('basic needs user and password', () => {
    expect(pickSmtpAuth({ authMethod: 'basic', username: 'u', password: 'p' }, null)).toEqual({
      type: 'basic',
      user: 'u',
      pass: 'p',
    });
    expect(pickSmtpAuth({ authMethod: 'basic', username: 'u', password: null }, null)).toMatchObject({
      problem: 'missing_password',
    });
    expect(pickSmtpAuth({ authMethod: 'basic', username: null, password: 'p' }, null)).toMatchObject({
      problem: 'missing_username',
    });
  });
  it('oauth2 uses the username, else the authorized mailbox, and passes a cached token on', () => {
    const grant = { grantId: 'g1', mailbox: 'box@example.com', status: 'active', accessToken: 'at', expiresAt: 123 };
    expect(pickSmtpAuth({ authMethod: 'oauth2' }, grant)).toEqual({
      type: 'OAuth2',
      user: 'box@example.com',
      grantId: 'g1',
      accessToken: 'at',
      expires: 123,
    });
    expect(
      pickSmtpAuth(
        { authMethod: 'oauth2', username: 'alias@example.com' },
        { grantId: 'g1', mailbox: 'box@example.com', status: 'active' },
      ),
    ).toEqual({
      type: 'OAuth2',
      user: 'alias@example.com',
      grantId: 'g1',
    });
  });
  it('oauth2 without a usable grant is a problem, not a throw', () => {
    expect(pickSmtpAuth({ authMethod: 'oauth2' }, null)).toMatchObject({ problem: 'not_authorized' });
    expect(
      pickSmtpAuth({ authMethod: 'oauth2' }, { grantId: 'g', mailbox: 'm@example.com', status: 'needs_reauth' }),
    ).toMatchObject({ problem: 'needs_reauth' });
  });
  it('never leaks the password into an oauth2 answer', () => {
    const r = pickSmtpAuth(
      { authMethod: 'oauth2', password: 'secret' },
      { grantId: 'g', mailbox: 'm@example.com', status: 'active' },
    );
    expect(JSON.stringify(r)).not.toContain('secret');
  });
});
