import * as oidc from 'openid-client';
import { describe, expect, it } from 'vitest';
import { AppError } from '../errors.js';
import { egressDenied } from '../net/egress.js';
import { classifyOAuthError, OAuthProtocolError } from './client.js';

const response = (status: number) => new Response(null, { status });
const bodyError = (status: number, error: string, description?: string) =>
  new oidc.ResponseBodyError('server responded with an error in the response body', {
    cause: { error, ...(description ? { error_description: description } : {}) },
    response: response(status),
  });
const challenge = (status: number, error?: string) =>
  new oidc.WWWAuthenticateChallengeError('server responded with a challenge', {
    cause: [{ scheme: 'bearer', parameters: error ? { error } : {} }],
    response: response(status),
  });
const callbackError = (error: string) =>
  new oidc.AuthorizationResponseError('authorization response from the server is an error', {
    cause: new URLSearchParams({ error }),
  });
// The declared constructor is Error's; the library's own takes `code` with the cause.
const clientError = (code: string, cause?: unknown) =>
  new (oidc.ClientError as new (message: string, options: { code: string; cause?: unknown }) => oidc.ClientError)(
    'client error',
    { code, cause },
  );

// Every shape openid-client (and fetch under it) fails with, and the one shape callers read.
const cases: { name: string; error: unknown; expected: Record<string, unknown> }[] = [
  {
    name: 'invalid_grant in a token response',
    error: bodyError(400, 'invalid_grant', 'AADSTS70000: revoked'),
    expected: {
      kind: 'invalid_grant',
      code: 'reauth_required',
      oauthError: 'invalid_grant',
      description: 'AADSTS70000: revoked',
      httpStatus: 400,
    },
  },
  {
    name: 'invalid_client in a token response',
    error: bodyError(401, 'invalid_client'),
    expected: { kind: 'invalid_client', code: 'oauth_failed', oauthError: 'invalid_client' },
  },
  { name: 'unauthorized_client', error: bodyError(400, 'unauthorized_client'), expected: { kind: 'invalid_client' } },
  {
    name: 'a 5xx with an error body',
    error: bodyError(503, 'server_error'),
    expected: { kind: 'temporary', code: 'provider_unavailable', httpStatus: 503 },
  },
  {
    name: 'temporarily_unavailable',
    error: bodyError(400, 'temporarily_unavailable'),
    expected: { kind: 'temporary' },
  },
  {
    name: 'another error body',
    error: bodyError(400, 'invalid_scope'),
    expected: { kind: 'protocol', code: 'oauth_failed', oauthError: 'invalid_scope' },
  },
  {
    name: 'access_denied on the callback',
    error: callbackError('access_denied'),
    expected: { kind: 'denied', code: 'oauth_failed', oauthError: 'access_denied' },
  },
  {
    name: 'another callback error',
    error: callbackError('server_error'),
    expected: { kind: 'protocol', oauthError: 'server_error' },
  },
  {
    name: 'a 401 challenge',
    error: challenge(401),
    expected: { kind: 'invalid_client', oauthError: 'invalid_client', httpStatus: 401 },
  },
  {
    name: 'a 400 challenge with another error',
    error: challenge(400, 'invalid_request'),
    expected: { kind: 'protocol', oauthError: 'invalid_request' },
  },
  {
    name: 'a request timeout',
    error: clientError('OAUTH_TIMEOUT'),
    expected: { kind: 'temporary', oauthError: 'timeout' },
  },
  {
    name: 'an HTML 502 page',
    error: clientError('OAUTH_RESPONSE_IS_NOT_JSON', response(502)),
    expected: { kind: 'temporary', oauthError: 'http_error', httpStatus: 502 },
  },
  {
    name: 'a 404 that is not an OAuth answer',
    error: clientError('OAUTH_RESPONSE_IS_NOT_CONFORM', response(404)),
    expected: { kind: 'protocol', oauthError: 'http_error' },
  },
  {
    name: 'a wrong issuer in the callback',
    error: clientError('OAUTH_JSON_ATTRIBUTE_COMPARISON'),
    expected: { kind: 'protocol', oauthError: 'OAUTH_JSON_ATTRIBUTE_COMPARISON' },
  },
  {
    name: 'fetch failed (network)',
    error: new TypeError('fetch failed'),
    expected: { kind: 'temporary', oauthError: 'network' },
  },
  {
    name: 'a connection refused',
    error: new Error('connect ECONNREFUSED 127.0.0.1:9'),
    expected: { kind: 'temporary', oauthError: 'network' },
  },
  {
    name: 'an aborted request',
    error: new DOMException('timed out', 'TimeoutError'),
    expected: { kind: 'temporary', oauthError: 'timeout' },
  },
  {
    name: 'an egress refusal under the library',
    error: new Error('wrapped', { cause: egressDenied('10.0.0.8', '10.0.0.8', { allowed: false, reason: 'private' }) }),
    expected: { kind: 'protocol', oauthError: 'egress_denied' },
  },
  {
    name: 'anything else',
    error: new Error('odd'),
    expected: { kind: 'protocol', oauthError: undefined, description: 'odd' },
  },
];

describe('classifyOAuthError', () => {
  it.each(cases)('$name', ({ error, expected }) => {
    const classified = classifyOAuthError(error);
    expect(classified).toBeInstanceOf(OAuthProtocolError);
    expect(classified).toBeInstanceOf(AppError);
    expect(classified).toMatchObject({ expose: false, ...expected });
    expect(classified.cause).toBe(expected.oauthError === 'egress_denied' ? (error as Error).cause : error);
  });

  it('returns an already classified error as it is', () => {
    const e = new OAuthProtocolError('temporary', 'timeout', undefined);
    expect(classifyOAuthError(e)).toBe(e);
  });
});
