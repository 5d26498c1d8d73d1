import { describe, expect, it } from 'vitest';
import { AppError } from '../errors.js';
import { ConnectFailure } from '../net/connect.js';
import { egressDenied } from '../net/egress.js';
import { forLibrary, MailTransportFailure, toMailTransportFailure } from './transport-failure.js';

/** A nodemailer error as the library builds it: an Error with its fields stamped on. */
function nodemailerError(message: string, fields: Record<string, unknown>, cause?: unknown): Error {
  return Object.assign(new Error(message, cause === undefined ? {} : { cause }), fields);
}

/** nodemailer stamps its code on what our callbacks hand it (getSocket, provisionCallback). */
function stampedByLibrary(ours: AppError, code: string): Error {
  return Object.assign(forLibrary(ours), { code });
}

const denial = egressDenied('smtp.example.com', '10.0.0.8', { allowed: false, reason: 'private' });
const reauth = new MailTransportFailure({ kind: 'token_needs_reauth', message: 'no access token: grant is dead' });

// Every shape a send or a verify can fail with, and the one shape the transport turns it into.
const cases: { name: string; error: unknown; expected: Record<string, unknown> }[] = [
  {
    name: 'an SMTP reply refusing recipients (EENVELOPE)',
    error: nodemailerError("Can't send mail - all recipients were rejected: 550 5.1.1 no such user", {
      code: 'EENVELOPE',
      response: '550 5.1.1 no such user',
      responseCode: 550,
      command: 'RCPT TO',
      rejectedErrors: [{ recipient: 'gone@example.net', responseCode: 550, response: '550 5.1.1 no such user' }],
    }),
    expected: {
      kind: 'smtp',
      code: 'mail_delivery_failed',
      stage: 'EENVELOPE',
      responseCode: 550,
      response: '550 5.1.1 no such user',
      command: 'RCPT TO',
      rejectedErrors: [{ recipient: 'gone@example.net', responseCode: 550, response: '550 5.1.1 no such user' }],
    },
  },
  {
    name: 'an authentication reply (EAUTH 535)',
    error: nodemailerError('Invalid login: 535 5.7.8 nope', {
      code: 'EAUTH',
      response: '535 5.7.8 nope',
      responseCode: 535,
      command: 'AUTH PLAIN',
    }),
    expected: { kind: 'smtp', stage: 'EAUTH', responseCode: 535, command: 'AUTH PLAIN', codes: ['EAUTH'] },
  },
  {
    name: 'a socket error nodemailer re-coded (ESOCKET over ECONNREFUSED)',
    error: nodemailerError('connect ECONNREFUSED 127.0.0.1:2525', { code: 'ESOCKET', originalCode: 'ECONNREFUSED' }),
    expected: {
      kind: 'smtp',
      stage: 'ESOCKET',
      codes: ['ESOCKET', 'ECONNREFUSED'],
      responseCode: undefined,
      timeout: undefined,
    },
  },
  {
    name: 'a greeting timeout',
    error: nodemailerError('Greeting never received', {
      code: 'ETIMEDOUT',
      timeoutType: 'GREETING_TIMEOUT',
      command: 'CONN',
    }),
    expected: { kind: 'smtp', stage: 'ETIMEDOUT', timeout: 'greeting', command: 'CONN' },
  },
  {
    name: 'a TLS failure with the certificate error as its cause',
    error: nodemailerError(
      'self-signed certificate',
      { code: 'ETLS' },
      Object.assign(new Error('self-signed certificate'), { code: 'DEPTH_ZERO_SELF_SIGNED_CERT' }),
    ),
    expected: { kind: 'smtp', stage: 'ETLS', codes: ['ETLS', 'DEPTH_ZERO_SELF_SIGNED_CERT'] },
  },
  {
    name: 'a plain socket error (no nodemailer code)',
    error: Object.assign(new Error('connect EHOSTUNREACH 10.9.9.9:25'), {
      code: 'EHOSTUNREACH',
      errno: -113,
      syscall: 'connect',
    }),
    expected: { kind: 'smtp', stage: 'EHOSTUNREACH', codes: ['EHOSTUNREACH'] },
  },
  {
    name: 'our connect timeout, handed to nodemailer by getSocket',
    error: stampedByLibrary(new ConnectFailure('Connection timeout', 'ETIMEDOUT', 'connect'), 'ESOCKET'),
    expected: {
      kind: 'smtp',
      message: 'Connection timeout',
      stage: 'ESOCKET',
      timeout: 'connect',
      codes: ['ESOCKET', 'ETIMEDOUT'],
    },
  },
  {
    name: 'a name that resolves to nothing, from the egress lookup',
    error: new ConnectFailure('no address for nowhere.example', 'ENOTFOUND'),
    expected: { kind: 'smtp', stage: undefined, codes: ['ENOTFOUND'] },
  },
  {
    name: 'an egress refusal, wrapped by the library',
    error: stampedByLibrary(denial, 'ESOCKET'),
    expected: { kind: 'egress_denied', code: 'egress_denied', status: 403, message: denial.message, hint: denial.hint },
  },
  {
    name: 'no access token: the grant needs re-authorization (stamped EAUTH by nodemailer)',
    error: stampedByLibrary(reauth, 'EAUTH'),
    expected: { kind: 'token_needs_reauth', code: 'reauth_required', message: 'no access token: grant is dead' },
  },
  {
    name: 'no access token right now',
    error: new MailTransportFailure({ kind: 'token_unavailable', message: 'no access token: provider down' }),
    expected: { kind: 'token_unavailable', code: 'provider_unavailable', status: 502 },
  },
  { name: 'a string', error: 'boom', expected: { kind: 'smtp', message: 'boom', codes: [], rejectedErrors: [] } },
  { name: 'null', error: null, expected: { kind: 'smtp', message: 'null', codes: [] } },
];

describe('toMailTransportFailure', () => {
  it.each(cases)('$name', ({ error, expected }) => {
    const failure = toMailTransportFailure(error);
    expect(failure).toBeInstanceOf(MailTransportFailure);
    expect(failure).toBeInstanceOf(AppError);
    expect(failure).toMatchObject(expected);
  });

  it('returns a failure it already translated as it is, and keeps what it translated as the cause', () => {
    expect(toMailTransportFailure(reauth)).toBe(reauth);
    const raw = nodemailerError('Invalid greeting', { code: 'EPROTOCOL', command: 'CONN' });
    expect(toMailTransportFailure(raw).cause).toBe(raw);
  });

  it('hands the library a plain Error, so the codes it stamps never overwrite ours', () => {
    const wrapped = stampedByLibrary(reauth, 'EAUTH');
    expect(wrapped).not.toBeInstanceOf(AppError);
    expect(reauth.code).toBe('reauth_required');
  });
});
