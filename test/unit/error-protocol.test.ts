import { describe, expect, it } from 'vitest';
import { MissingEncryptionKeyError } from '../../src/crypto/rotation.js';
import type { AppError } from '../../src/errors.js';
import { ERROR_CODES, errorBody, findAppError, isAppError } from '../../src/errors.js';
import { MailTransportFailure } from '../../src/mail/transport-failure.js';
import { ConnectFailure } from '../../src/net/connect.js';
import { egressDenied } from '../../src/net/egress.js';
import { OAuthProtocolError } from '../../src/oauth/client.js';
import { AuthorizationFailure } from '../../src/tokens/authorize.js';

// Every failure the domain raises on purpose is an AppError with a code from the one table: the error handler,
// the queue and the CLI read `code`, `status`, `expose` and `hint`, whatever area raised it.
const raised: { name: string; error: unknown; code: keyof typeof ERROR_CODES; expose: boolean; hint?: RegExp }[] = [
  {
    name: 'a refused callback',
    error: new AuthorizationFailure('expired', 'This authorization expired.', 'srv-1', 'Press Authorize again.'),
    code: 'oauth_failed',
    expose: true,
    hint: /Authorize again/,
  },
  {
    name: 'a refused callback without a hint',
    error: new AuthorizationFailure('unknown_state', 'Unknown.'),
    code: 'oauth_failed',
    expose: true,
  },
  {
    name: 'a dead refresh token',
    error: new OAuthProtocolError('invalid_grant', 'invalid_grant', 'revoked'),
    code: 'reauth_required',
    expose: false,
  },
  {
    name: 'a provider that is down',
    error: new OAuthProtocolError('temporary', 'timeout', undefined),
    code: 'provider_unavailable',
    expose: false,
  },
  {
    name: 'a rejected client',
    error: new OAuthProtocolError('invalid_client', 'invalid_client', 'AADSTS7000215'),
    code: 'oauth_failed',
    expose: false,
  },
  {
    name: 'an egress refusal',
    error: egressDenied('169.254.169.254', null, { allowed: false, reason: 'metadata' }),
    code: 'egress_denied',
    expose: true,
    hint: /public address/,
  },
  {
    name: 'a connection that could not be opened',
    error: new ConnectFailure('Connection timeout', 'ETIMEDOUT', 'connect'),
    code: 'connection_failed',
    expose: false,
  },
  {
    name: 'a failed delivery',
    error: new MailTransportFailure({ kind: 'smtp', message: '421 busy', responseCode: 421 }),
    code: 'mail_delivery_failed',
    expose: false,
  },
  {
    name: 'a grant that needs re-authorization',
    error: new MailTransportFailure({ kind: 'token_needs_reauth', message: 'no access token' }),
    code: 'reauth_required',
    expose: true,
  },
  {
    name: 'stored values whose key is missing',
    error: new MissingEncryptionKeyError([{ keyId: 'old', values: 2, example: 'smtp_servers/s1#password' }]),
    code: 'encryption_keys_missing',
    expose: true,
    hint: /MAILGATE_ENCRYPTION_KEYS/,
  },
];

describe('one error protocol', () => {
  it.each(raised)('$name is an AppError with its code, status and hint', ({ error, code, expose, hint }) => {
    expect(isAppError(error)).toBe(true);
    const e = error as AppError;
    expect(e).toMatchObject({ code, status: ERROR_CODES[code].status, expose });
    if (hint) expect(e.hint).toMatch(hint);
    else expect(e.hint).toBeUndefined();
    // What reaches an API caller: the message only when it may be shown, never a stack.
    const body = JSON.stringify(errorBody(e));
    expect(body).toContain(expose ? e.message.slice(0, 20) : ERROR_CODES[code].message);
    expect(body).not.toMatch(/\n\s+at /);
  });

  it('finds an AppError of a code along a cause chain, and nothing else', () => {
    const denial = egressDenied('10.0.0.8', '10.0.0.8', { allowed: false, reason: 'private' });
    expect(findAppError(new Error('outer', { cause: new Error('inner', { cause: denial }) }), 'egress_denied')).toBe(
      denial,
    );
    expect(findAppError(denial, 'reauth_required')).toBeUndefined();
    expect(findAppError('not an error', 'egress_denied')).toBeUndefined();
    expect(findAppError(null, 'egress_denied')).toBeUndefined();
  });

  it('keeps what the CLI and the start-up check read from a missing key', () => {
    const e = new MissingEncryptionKeyError([{ keyId: 'old', values: 1, example: 'oauth_grants/g1#refreshToken' }]);
    expect(e).toBeInstanceOf(MissingEncryptionKeyError);
    expect(e.missing).toEqual([{ keyId: 'old', values: 1, example: 'oauth_grants/g1#refreshToken' }]);
    expect(e.message).toMatch(/key "old" protects 1 stored value \(for example oauth_grants\/g1#refreshToken\)/);
    expect(e.message).toMatch(/npx mailgate keys rotate/);
  });
});
