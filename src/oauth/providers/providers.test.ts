import { describe, expect, it } from 'vitest';
import { appOnlyScope, providerFields, providerOf, PROVIDER_KINDS, validateProviderSettings } from './index.js';

describe('provider registry', () => {
  it('names every provider once, each with its own kind', () => {
    expect(PROVIDER_KINDS).toEqual(['google', 'microsoft', 'custom']);
    for (const kind of PROVIDER_KINDS) expect(providerOf(kind).kind).toBe(kind);
  });

  it('refuses a field another provider owns, naming the field', () => {
    expect(
      validateProviderSettings(
        'google',
        { tenant: 'contoso.onmicrosoft.com', issuer: 'https://idp.example' },
        { allowInsecure: false },
      ),
    ).toEqual([
      { field: 'tenant', message: 'only Microsoft integrations have a tenant' },
      { field: 'issuer', message: 'only custom integrations set issuer; the google preset uses its own' },
    ]);
    expect(
      validateProviderSettings(
        'custom',
        { issuer: 'https://idp.example', googleInTesting: true },
        { allowInsecure: false },
      ),
    ).toEqual([{ field: 'googleInTesting', message: 'only applies to Google integrations' }]);
    expect(
      validateProviderSettings('microsoft', { tenant: 'common' }, { allowInsecure: false }).map((d) => d.field),
    ).toEqual(['tenant']);
  });

  it('stores only the fields of the chosen provider', () => {
    expect(providerFields('google', { googleInTesting: true, tenant: 'x' })).toEqual({
      tenant: null,
      issuer: null,
      authorizationEndpoint: null,
      tokenEndpoint: null,
      revocationEndpoint: null,
      googleInTesting: true,
      authority: null,
      graphBaseUrl: null,
    });
    expect(providerFields('custom', { issuer: 'https://idp.example//' }).issuer).toBe('https://idp.example');
  });

  it('takes the mailbox from a Microsoft user name only when it is an address', () => {
    expect(providerOf('microsoft').mailboxFromClaims?.({ preferredUsername: 'ann@contoso.example' })).toBe(
      'ann@contoso.example',
    );
    expect(providerOf('microsoft').mailboxFromClaims?.({ preferredUsername: 'ann' })).toBeUndefined();
    expect('mailboxFromClaims' in providerOf('google')).toBe(false);
  });

  it('asks app-only tokens for the scope of the server protocol; unknown protocols count as SMTP', () => {
    const ms = { provider: 'microsoft' as const, tenant: 't' };
    expect(appOnlyScope(ms, 'smtp')).toBe('https://outlook.office365.com/.default');
    expect(appOnlyScope(ms, 'something_new')).toBe('https://outlook.office365.com/.default');
    expect(appOnlyScope(ms, 'graph')).toBe('https://graph.microsoft.com/.default');
    const usGov = { ...ms, authority: 'https://login.microsoftonline.us', graphBaseUrl: 'https://graph.microsoft.us' };
    expect(appOnlyScope(usGov, 'smtps')).toBe('https://outlook.office365.us/.default');
    expect(appOnlyScope(usGov, 'graph')).toBe('https://graph.microsoft.us/.default');
    expect(appOnlyScope({ provider: 'google' }, 'smtp')).toBe('https://mail.google.com/');
    expect(appOnlyScope({ provider: 'google' }, 'gmail_api')).toBe('https://www.googleapis.com/auth/gmail.send');
    expect(appOnlyScope({ provider: 'custom' }, 'smtp')).toBeUndefined();
  });

  it('sovereign clouds: a Microsoft authority and Graph URL, scheme and host only', () => {
    const check = (authority: string) =>
      validateProviderSettings('microsoft', { tenant: 'contoso.onmicrosoft.com', authority }, { allowInsecure: false });
    expect(check('https://login.microsoftonline.us')).toEqual([]);
    expect(check('http://login.microsoftonline.us').map((d) => d.field)).toEqual(['authority']);
    expect(check('https://login.microsoftonline.us/tenant').map((d) => d.field)).toEqual(['authority']);
    expect(
      validateProviderSettings('google', { graphBaseUrl: 'https://graph.microsoft.us' }, { allowInsecure: false }),
    ).toEqual([{ field: 'graphBaseUrl', message: 'only Microsoft integrations have a Graph base URL' }]);
    expect(
      providerOf('microsoft').issuer({ MAILGATE_MICROSOFT_AUTHORITY: 'https://login.microsoftonline.com' } as never, {
        tenant: 't1',
        authority: 'https://login.microsoftonline.us',
      }),
    ).toBe('https://login.microsoftonline.us/t1/v2.0');
  });
});
