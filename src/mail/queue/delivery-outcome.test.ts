import { describe, expect, it } from 'vitest';
import type { MessageDoc } from './model.js';
import { deliveryOutcome, type DeliveryAttempt, type NextState } from './delivery-outcome.js';

const T0 = Date.parse('2026-03-01T10:00:00Z');
const AT = T0 + 5_000;
const server = { host: 'smtp.example.com', port: 587, protocol: 'smtp' as const, tls: true };

function message(over: Partial<MessageDoc> = {}): MessageDoc {
  return {
    serverId: 'srv_1',
    status: 'queued',
    heldReason: null,
    attempts: 0,
    createdAt: T0,
    updatedAt: T0,
    nextAttemptAt: T0,
    sentAt: null,
    lastError: null,
    recipients: [
      { address: 'a@example.org', kind: 'to', status: 'pending' },
      { address: 'b@example.org', kind: 'cc', status: 'pending' },
    ],
    input: { to: ['a@example.org'], cc: ['b@example.org'], subject: 'Hi', text: 'body', html: '<p>body</p>' },
    apiKeyId: null,
    smtpResponse: null,
    size: 100,
    ...over,
  };
}

const smtpError = (responseCode: number, response: string, extra: object = {}) =>
  Object.assign(new Error(response), { responseCode, response, command: 'DATA', ...extra });
const failed = (error: unknown): DeliveryAttempt => ({ kind: 'failed', error, server });

interface Case {
  name: string;
  message?: Partial<MessageDoc>;
  attempt: DeliveryAttempt;
  expected: {
    status: NextState['status'];
    attempts: number;
    nextAttemptAt?: number | null;
    heldReason?: string | null;
    errorCode?: string | null;
    errorMessage?: RegExp;
    pauseServer?: boolean;
    sentAt?: number | null;
    recipients?: string[];
  };
}

// Backoff: base 1 s, cap 10 s, random fixed at 0 → the lower end of the upper half: base·2^(n−1) / 2.
const options = { maxAttempts: 3, backoff: { baseMs: 1000, capMs: 10_000 }, now: AT, random: () => 0 };

const cases: Case[] = [
  {
    name: 'accepted for every recipient → sent',
    attempt: {
      kind: 'accepted',
      result: {
        messageId: '<x>',
        accepted: ['A@example.org', 'b@example.org'],
        rejected: [],
        response: '250 2.0.0 queued as 42',
      },
    },
    expected: {
      status: 'sent',
      attempts: 1,
      nextAttemptAt: null,
      sentAt: AT,
      recipients: ['accepted', 'accepted'],
      errorCode: null,
    },
  },
  {
    name: 'accepted for one, one recipient refused at RCPT → sent, per-recipient results',
    attempt: {
      kind: 'accepted',
      result: {
        messageId: '<x>',
        accepted: ['a@example.org'],
        rejected: [{ address: 'b@example.org', responseCode: 550, response: '550 no such user' }],
        response: '250 ok',
      },
    },
    expected: { status: 'sent', attempts: 1, sentAt: AT, recipients: ['accepted', 'rejected'] },
  },
  {
    name: '451 on the first attempt → deferred by half the base',
    attempt: failed(smtpError(451, '451 4.7.1 try again later')),
    expected: {
      status: 'deferred',
      attempts: 1,
      nextAttemptAt: AT + 500,
      errorCode: 'temporary_rejection',
      recipients: ['pending', 'pending'],
    },
  },
  {
    name: '451 on the second attempt → deferred twice as long',
    message: { status: 'deferred', attempts: 1 },
    attempt: failed(smtpError(451, '451 4.7.1 try again later')),
    expected: { status: 'deferred', attempts: 2, nextAttemptAt: AT + 1000 },
  },
  {
    name: 'a dropped connection is temporary',
    attempt: failed(Object.assign(new Error('Connection closed unexpectedly'), { code: 'ECONNECTION' })),
    expected: { status: 'deferred', attempts: 1, nextAttemptAt: AT + 500 },
  },
  {
    name: 'a temporary failure on the last attempt → failed, giving up',
    message: { status: 'deferred', attempts: 2 },
    attempt: failed(smtpError(451, '451 4.7.1 try again later')),
    expected: {
      status: 'failed',
      attempts: 3,
      nextAttemptAt: null,
      errorCode: 'temporary_rejection',
      errorMessage: /^gave up after 3 attempts: /,
    },
  },
  {
    name: '550 → failed at once with the reply',
    attempt: failed(smtpError(550, '550 5.7.1 relaying denied')),
    expected: { status: 'failed', attempts: 1, nextAttemptAt: null, errorMessage: /550/ },
  },
  {
    name: '550 for one recipient in the error → its recipient result says so',
    attempt: failed(
      smtpError(550, '550 all recipients refused', {
        rejectedErrors: [{ recipient: 'A@example.org', responseCode: 550, response: '550 no such user' }],
      }),
    ),
    expected: { status: 'failed', attempts: 1, recipients: ['rejected', 'pending'] },
  },
  {
    name: '535 credentials rejected → held, server to be paused, no attempt counted',
    message: { status: 'deferred', attempts: 1 },
    attempt: failed(smtpError(535, '535 5.7.8 authentication failed', { command: 'AUTH PLAIN', code: 'EAUTH' })),
    expected: {
      status: 'held',
      attempts: 1,
      nextAttemptAt: null,
      heldReason: 'server_paused',
      pauseServer: true,
      recipients: ['pending', 'pending'],
    },
  },
  {
    name: 'the server was deleted → failed, nothing tried',
    attempt: { kind: 'server_deleted' },
    expected: {
      status: 'failed',
      attempts: 0,
      nextAttemptAt: null,
      errorCode: 'server_deleted',
      errorMessage: /srv_1 no longer exists/,
    },
  },
  {
    name: 'outgoing mail switched off → held, nothing tried',
    attempt: { kind: 'sending_disabled' },
    expected: { status: 'held', attempts: 0, nextAttemptAt: null, heldReason: 'sending_disabled', errorCode: null },
  },
  {
    name: 'the server is paused → held, nothing tried',
    message: { attempts: 2, status: 'deferred' },
    attempt: { kind: 'server_paused' },
    expected: { status: 'held', attempts: 2, nextAttemptAt: null, heldReason: 'server_paused', pauseServer: false },
  },
];

describe('deliveryOutcome', () => {
  it.each(cases)('$name', ({ message: over, attempt, expected }) => {
    const next = deliveryOutcome(message(over), attempt, options);
    expect(next.status).toBe(expected.status);
    expect(next.value.status).toBe(expected.status);
    expect(next.value.attempts).toBe(expected.attempts);
    expect(next.value.updatedAt).toBe(AT);
    if (expected.nextAttemptAt !== undefined) expect(next.value.nextAttemptAt).toBe(expected.nextAttemptAt);
    if (expected.heldReason !== undefined) expect(next.value.heldReason).toBe(expected.heldReason);
    if (expected.errorCode !== undefined) expect(next.value.lastError?.code ?? null).toBe(expected.errorCode);
    if (expected.errorMessage) expect(next.value.lastError?.message).toMatch(expected.errorMessage);
    if (expected.sentAt !== undefined) expect(next.value.sentAt).toBe(expected.sentAt);
    if (expected.recipients) expect(next.value.recipients.map((r) => r.status)).toEqual(expected.recipients);
    if (expected.pauseServer !== undefined)
      expect(next.status === 'held' && next.pauseServer !== undefined).toBe(expected.pauseServer);
  });

  it('a sent message keeps no body at rest, and the reply is cut to 500 characters', () => {
    const next = deliveryOutcome(
      message(),
      {
        kind: 'accepted',
        result: {
          messageId: '<x>',
          accepted: ['a@example.org', 'b@example.org'],
          rejected: [],
          response: `250 ${'x'.repeat(600)}`,
        },
      },
      options,
    );
    expect(next.value.input).not.toHaveProperty('text');
    expect(next.value.input).not.toHaveProperty('html');
    expect(next.value.input.subject).toBe('Hi');
    expect(next.value.smtpResponse).toHaveLength(500);
  });

  it('backoff stops growing at the cap and spreads retries over the upper half', () => {
    const late = message({ status: 'deferred', attempts: 8 });
    const error = failed(smtpError(451, '451 later'));
    const low = deliveryOutcome(late, error, { ...options, maxAttempts: 20, random: () => 0 });
    const high = deliveryOutcome(late, error, { ...options, maxAttempts: 20, random: () => 1 });
    expect(low.value.nextAttemptAt).toBe(AT + 5_000);
    expect(high.value.nextAttemptAt).toBe(AT + 10_000);
  });
});
