import { describe, expect, it } from 'vitest';
import { providerFields, providerOf, PROVIDER_KINDS, validateProviderSettings } from './index.js';

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
});
