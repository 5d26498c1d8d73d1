import { describe, expect, it } from 'vitest';
import { diagnose } from './diagnose.js';
import { MailTransportFailure } from './transport-failure.js';

// The real failures are produced in test/integration/mail-diagnose.test.ts; these cover what a loopback test
// cannot produce (an unreachable network) and the classification that drives the queue.
describe('diagnose', () => {
  it('unreachable host', () => {
    expect(
      diagnose(
        { code: 'ESOCKET', originalCode: 'EHOSTUNREACH', message: 'connect EHOSTUNREACH' },
        { host: '10.9.9.9', port: 25 },
      ),
    ).toMatchObject({ code: 'host_unreachable', class: 'temporary' });
  });
  it('token problems: needs re-authorization pauses, unavailable retries', () => {
    expect(diagnose(new MailTransportFailure({ kind: 'token_needs_reauth', message: 'x' }))).toMatchObject({
      code: 'oauth_needs_reauth',
      class: 'credentials',
    });
    const never = new MailTransportFailure({
      kind: 'token_needs_reauth',
      message: 'This server uses OAuth 2.0 but no mailbox is authorized yet: press Authorize.',
    });
    expect(diagnose(never)).toMatchObject({ code: 'oauth_not_authorized', class: 'credentials' });
    expect(diagnose(never).hint).not.toMatch(/no longer valid|Re-authorize/);
    expect(diagnose(new MailTransportFailure({ kind: 'token_unavailable', message: 'x' }))).toMatchObject({
      code: 'oauth_token_unavailable',
      class: 'temporary',
      throttled: true,
    });
  });
  it('classes: 5xx permanent, 4xx temporary, 503 temporary, 535 credentials', () => {
    expect(diagnose({ responseCode: 552, response: '552 5.3.4 too big', code: 'EMESSAGE' }).class).toBe('permanent');
    expect(diagnose({ responseCode: 450, response: '450 4.2.1 try later', code: 'EENVELOPE' }).class).toBe('temporary');
    expect(diagnose({ responseCode: 503, response: '503 bad sequence', code: 'EPROTOCOL' }).class).toBe('temporary');
    expect(diagnose({ responseCode: 535, response: '535 5.7.8 nope', code: 'EAUTH' }).class).toBe('credentials');
  });
  it('never throws on odd input', () => {
    expect(diagnose('boom').code).toBe('send_failed');
    expect(diagnose(null).code).toBe('send_failed');
  });
});
