import { describe, expect, it } from 'vitest';
import { AppError } from '../errors.js';
import { ConnectFailure, toConnectFailure } from './connect.js';
import { egressDenied } from './egress.js';

const denial = egressDenied('metadata.google.internal', null, { allowed: false, reason: 'metadata' });

// What a socket or a lookup can fail with, and the one shape the socket layer reports.
const cases: { name: string; error: unknown; expected: Record<string, unknown> }[] = [
  {
    name: 'a refused connection',
    error: Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED', errno: -111 }),
    expected: {
      code: 'connection_failed',
      systemCode: 'ECONNREFUSED',
      timeout: undefined,
      message: 'connect ECONNREFUSED 127.0.0.1:1',
    },
  },
  {
    name: 'a failed lookup',
    error: Object.assign(new Error('getaddrinfo ENOTFOUND nowhere.invalid'), { code: 'ENOTFOUND' }),
    expected: { systemCode: 'ENOTFOUND' },
  },
  {
    name: 'a reset',
    error: Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' }),
    expected: { systemCode: 'ECONNRESET' },
  },
  {
    name: 'an error without a code',
    error: new Error('socket hang up'),
    expected: { systemCode: undefined, message: 'socket hang up' },
  },
  { name: 'something thrown that is not an Error', error: 'odd', expected: { systemCode: undefined, message: 'odd' } },
];

describe('toConnectFailure', () => {
  it.each(cases)('$name', ({ error, expected }) => {
    const failure = toConnectFailure(error);
    expect(failure).toBeInstanceOf(ConnectFailure);
    expect(failure).toMatchObject({ status: 502, expose: false, ...expected });
    expect(failure.cause).toBe(error);
  });

  it('leaves an egress refusal as it is', () => {
    expect(toConnectFailure(denial)).toBe(denial);
    expect(denial).toBeInstanceOf(AppError);
  });
});
