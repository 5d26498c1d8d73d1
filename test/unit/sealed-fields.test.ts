import { describe, expect, it } from 'vitest';
import { SEALED_FIELDS } from '../../src/crypto/sealed-fields.js';
import { SERVERS } from '../../src/mail/servers.js';
import { TRANSACTIONS } from '../../src/tokens/authorize.js';
import { INTEGRATIONS } from '../../src/oauth/integrations.js';
import { GRANTS } from '../../src/tokens/grants.js';
import { SUBMISSION_TLS } from '../../src/submission/certificate.js';

describe('the registry of sealed fields', () => {
  it('names the collections the services really write their secrets to', () => {
    expect(SEALED_FIELDS).toEqual(
      expect.arrayContaining([
        { collection: SERVERS, path: 'password' },
        { collection: INTEGRATIONS, path: 'clientSecret' },
        { collection: GRANTS, path: 'tokens.accessToken' },
        { collection: GRANTS, path: 'tokens.refreshToken' },
        { collection: TRANSACTIONS, path: 'codeVerifier' },
        { collection: SUBMISSION_TLS, path: 'key' },
      ]),
    );
  });
});
