import { describe, expect, it } from 'vitest';
import { deliveryOutcome } from '../queue/delivery-outcome.js';
import type { MessageDoc } from '../queue/model.js';
import { diagnose } from '../diagnose.js';
import { MailTransportFailure } from '../transport-failure.js';
import { scopesForServer } from '../../tokens/authorize.js';
import { gmailError, graphError, nextPacificMidnight, retryAfterOf } from './api-answer.js';
import { createMailboxGate } from './mailbox-gate.js';

const NOW = Date.parse('2026-03-01T10:00:00Z');
const answer = (status: number, body: unknown, headers: Record<string, string> = {}) => ({
  status,
  headers: new Headers(headers),
  body: JSON.stringify(body),
});
const apiFailure = (facts: Partial<ConstructorParameters<typeof MailTransportFailure>[0]>) =>
  new MailTransportFailure({ kind: 'api', api: 'graph', message: 'x', ...facts });

describe('provider answers', () => {
  it('Retry-After as seconds or an HTTP date; absurd values capped at a day', () => {
    expect(retryAfterOf(new Headers({ 'retry-after': '7' }), NOW)).toBe(NOW + 7000);
    expect(retryAfterOf(new Headers({ 'retry-after': new Date(NOW + 60_000).toUTCString() }), NOW)).toBe(NOW + 60_000);
    expect(retryAfterOf(new Headers({ 'retry-after': '99999999' }), NOW)).toBe(NOW + 24 * 3_600_000);
    expect(retryAfterOf(new Headers({ 'retry-after': 'soon' }), NOW)).toBeUndefined();
  });

  it('Graph 429 is a rate limit with the provider time; 500 is not', () => {
    const e = graphError(
      answer(429, { error: { code: 'ApplicationThrottled', message: 'slow' } }, { 'retry-after': '5' }),
      NOW,
    );
    expect(e).toMatchObject({ providerCode: 'ApplicationThrottled', throttled: true, retryAt: NOW + 5000 });
    expect(graphError(answer(500, { error: { code: 'x' } }), NOW).throttled).toBe(false);
  });

  it('Gmail quotas: 403 rateLimitExceeded is a rate limit, dailyLimitExceeded waits for midnight Pacific', () => {
    const rate = gmailError(answer(403, { error: { errors: [{ reason: 'rateLimitExceeded' }] } }), NOW);
    expect(rate).toMatchObject({ throttled: true, retryAt: NOW + 30_000 });
    const daily = gmailError(answer(403, { error: { errors: [{ reason: 'dailyLimitExceeded' }] } }), NOW);
    // 10:00 UTC on 1 March is 02:00 PST: the next midnight there is 08:00 UTC on 2 March.
    expect(daily.retryAt).toBe(Date.parse('2026-03-02T08:00:00Z'));
    expect(nextPacificMidnight(Date.parse('2026-07-01T06:59:00Z'))).toBe(Date.parse('2026-07-01T07:00:00Z'));
  });
});

describe('diagnoses of API failures', () => {
  it.each([
    [{ httpStatus: 429, retryAt: NOW + 1 }, 'api_throttled', 'temporary'],
    [{ httpStatus: 403, providerCode: 'dailyLimitExceeded', retryAt: NOW + 1 }, 'api_daily_limit', 'temporary'],
    [{ httpStatus: 403, providerCode: 'ErrorSendAsDenied' }, 'send_as_denied', 'credentials'],
    [{ httpStatus: 403, providerCode: 'ErrorAccessDenied' }, 'api_permission_missing', 'credentials'],
    [{ httpStatus: 401 }, 'api_token_rejected', 'credentials'],
    [{ httpStatus: 413 }, 'api_message_too_large', 'permanent'],
    [{ httpStatus: 503 }, 'api_unavailable', 'temporary'],
    [{ httpStatus: 0, providerCode: 'ECONNREFUSED' }, 'api_unreachable', 'temporary'],
    [{ httpStatus: 400, providerCode: 'ErrorInvalidRecipients' }, 'api_rejected', 'permanent'],
  ] as const)('%o → %s', (facts, code, cls) => {
    expect(diagnose(apiFailure(facts))).toMatchObject({ code, class: cls });
  });

  it('SMTP 5.7.139 and 5.7.30 point to Graph; 5.7.60 names the send-as right', () => {
    const smtp = (response: string) =>
      new MailTransportFailure({ kind: 'smtp', message: response, response, responseCode: 535, stage: 'EAUTH' });
    expect(
      diagnose(smtp('535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled')).hint,
    ).toContain('Switch to Microsoft Graph');
    expect(diagnose(smtp('535 5.7.30 Basic authentication is not supported')).hint).toContain(
      'Switch to Microsoft Graph',
    );
    const sendAs = diagnose(smtp('554 5.7.60 SMTP; Client does not have permissions to send as this sender'));
    expect(sendAs).toMatchObject({ code: 'send_as_denied', class: 'credentials' });
    expect(sendAs.hint).toContain('Send As');
  });
});

describe('the queue and rate limits', () => {
  const message: MessageDoc = {
    serverId: 'srv_1',
    status: 'queued',
    heldReason: null,
    attempts: 1,
    createdAt: NOW,
    updatedAt: NOW,
    nextAttemptAt: NOW,
    sentAt: null,
    lastError: null,
    recipients: [{ address: 'a@example.org', kind: 'to', status: 'pending' }],
    input: { to: ['a@example.org'], subject: 'Hi', text: 'body', html: '<p>body</p>' },
    apiKeyId: null,
    smtpResponse: null,
    size: 100,
  };
  const options = { maxAttempts: 2, backoff: { baseMs: 1000, capMs: 60_000 }, now: NOW, random: () => 0.5 };

  it('a throttled attempt waits for the provider time and is not counted, even at the last attempt', () => {
    const next = deliveryOutcome(
      message,
      { kind: 'failed', error: apiFailure({ httpStatus: 429, retryAt: NOW + 120_000 }), server: {} },
      options,
    );
    expect(next.status).toBe('deferred');
    expect(next.value).toMatchObject({ attempts: 1, nextAttemptAt: NOW + 120_000 });
  });

  it("a 503's Retry-After wins over a shorter backoff; the attempt counts", () => {
    const next = deliveryOutcome(
      { ...message, attempts: 0 },
      { kind: 'failed', error: apiFailure({ httpStatus: 503, retryAt: NOW + 600_000 }), server: {} },
      options,
    );
    expect(next.value).toMatchObject({ status: 'deferred', attempts: 1, nextAttemptAt: NOW + 600_000 });
  });
});

describe('mailbox gate', () => {
  it('runs at most `limit` tasks per key and hands slots over in order; other keys are not held up', async () => {
    const gate = createMailboxGate({ limit: 2, now: () => NOW });
    const releases: (() => void)[] = [];
    const order: string[] = [];
    const task = (name: string) => () =>
      new Promise<void>((resolve) => {
        order.push(name);
        releases.push(resolve);
      });
    const all = ['a1', 'a2', 'a3'].map((n) => gate.run('a', task(n)));
    const other = gate.run('b', task('b1'));
    await Promise.resolve();
    expect(order).toEqual(['a1', 'a2', 'b1']);
    expect(gate.active('a')).toBe(2);
    releases[0]!();
    await all[0];
    await new Promise((r) => setTimeout(r, 0));
    expect(order).toEqual(['a1', 'a2', 'b1', 'a3']);
    expect(gate.active('a')).toBe(2);
    releases.slice(1).forEach((r) => r());
    await Promise.all([...all, other]);
    expect(gate.active('a')).toBe(0);
  });

  it('a slowed mailbox stays slowed until its time', () => {
    let now = NOW;
    const gate = createMailboxGate({ limit: 4, now: () => now });
    gate.slow('a', NOW + 1000);
    expect(gate.slowedUntil('a')).toBe(NOW + 1000);
    expect(gate.slowedUntil('b')).toBeNull();
    now += 1000;
    expect(gate.slowedUntil('a')).toBeNull();
  });
});

describe('Authorize scopes per protocol', () => {
  it('Graph: Mail.Send and the integration scopes without the SMTP resource; Gmail API: gmail.send added', () => {
    expect(scopesForServer('graph', ['https://outlook.office.com/SMTP.Send', 'offline_access', 'User.Read'])).toEqual([
      'openid',
      'email',
      'https://graph.microsoft.com/Mail.Send',
      'offline_access',
      'User.Read',
    ]);
    // A sovereign cloud's Graph is its own resource: Mail.Send is asked of it, not of the global Graph.
    expect(scopesForServer('graph', ['offline_access'], 'https://graph.microsoft.us/v1.0')).toEqual([
      'openid',
      'email',
      'https://graph.microsoft.us/Mail.Send',
      'offline_access',
    ]);
    expect(scopesForServer('graph', [], null)).toContain('https://graph.microsoft.com/Mail.Send');
    expect(scopesForServer('gmail_api', ['https://mail.google.com/'])).toEqual([
      'openid',
      'email',
      'https://www.googleapis.com/auth/gmail.send',
      'https://mail.google.com/',
    ]);
    expect(scopesForServer('smtp', ['https://mail.google.com/'])).toEqual([
      'openid',
      'email',
      'https://mail.google.com/',
    ]);
  });
});
