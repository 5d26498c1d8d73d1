import { describe, expect, it } from 'vitest';
import { diagnose } from '../../src/mail/diagnose.js';
import type { MailTransport } from '../../src/mail/transport.js';
import { testConnection } from '../../src/mail/verify.js';
import { composeMessage, messageInput } from '../../src/mail/compose.js';
import { closedPort, startSilentServer, type TestSmtpOptions } from '../fakes/smtp-server.js';
import { resolvedServerForTests } from '../fakes/mail-services.js';
import { useTransportRig } from '../fakes/transport-rig.js';

// Every diagnosis is produced for real: a real smtp-server scripted to fail, a silent port, a closed port,
// a self-signed certificate without its CA.

const rig = useTransportRig();
const { smtp } = rig;
const server = resolvedServerForTests;

function transport(ca?: string): MailTransport {
  return rig.transport(ca ? { tlsCa: [ca] } : {});
}

const PASSWORD = 'correct horse battery staple';

describe('Test connection', () => {
  it('succeeds over STARTTLS with PLAIN and masks the credentials in the transcript', async () => {
    const s = await smtp({ auth: { user: 'alice', pass: PASSWORD }, greetingDelayMs: 120 });
    const started = performance.now();
    const r = await testConnection(
      transport(s.ca),
      server({ port: s.port, authMethod: 'basic', username: 'alice', password: PASSWORD }),
    );
    const elapsed = performance.now() - started;
    expect(r.ok, r.transcript.join('\n')).toBe(true);
    expect(r.transcript.some((l) => l.startsWith('C: STARTTLS'))).toBe(true);
    expect(r.transcript.some((l) => /^C: AUTH PLAIN/.test(l))).toBe(true);
    const all = r.transcript.join('\n');
    expect(all).not.toContain(PASSWORD);
    expect(all).not.toContain(Buffer.from(`\0alice\0${PASSWORD}`).toString('base64'));
    expect(all).not.toContain(Buffer.from(PASSWORD).toString('base64'));
    // The time of the whole conversation: at least the server's slow greeting, at most the call itself.
    expect(r.durationMs).toBeGreaterThanOrEqual(120);
    expect(r.durationMs).toBeLessThanOrEqual(Math.ceil(elapsed));
    expect(r.summary).toBe(`Succeeded: connected, TLS, authenticated (basic) in ${r.durationMs} ms.`);
    expect(s.authAttempts).toEqual([{ method: 'PLAIN', user: 'alice' }]);
  });

  it('succeeds with LOGIN and masks the password step', async () => {
    const s = await smtp({ auth: { user: 'bob', pass: PASSWORD }, authMethods: ['LOGIN'] });
    const r = await testConnection(
      transport(s.ca),
      server({ port: s.port, authMethod: 'basic', username: 'bob', password: PASSWORD }),
    );
    expect(r.ok, r.transcript.join('\n')).toBe(true);
    expect(s.authAttempts[0]?.method).toBe('LOGIN');
    const all = r.transcript.join('\n');
    expect(all).toContain('C: AUTH LOGIN');
    expect(all).not.toContain(Buffer.from(PASSWORD).toString('base64'));
    expect(all).not.toContain(PASSWORD);
  });

  it('succeeds with implicit TLS (smtps)', async () => {
    const s = await smtp({ secure: true, auth: { user: 'alice', pass: PASSWORD } });
    const r = await testConnection(
      transport(s.ca),
      server({
        port: s.port,
        protocol: 'smtps',
        tls: false,
        authMethod: 'basic',
        username: 'alice',
        password: PASSWORD,
      }),
    );
    expect(r.ok, r.transcript.join('\n')).toBe(true);
  });

  it('connection refused', async () => {
    const r = await testConnection(transport(), server({ port: await closedPort() }));
    expect(r).toMatchObject({ ok: false, code: 'connection_refused' });
    expect(r.hint).toMatch(/host name and port/);
  });

  it('a server that never greets: greeting timeout', async () => {
    const silent = await startSilentServer();
    rig.keep(silent);
    const r = await testConnection(transport(), server({ port: silent.port, timeoutMs: 1500 }));
    expect(r, r.transcript.join('\n')).toMatchObject({ ok: false, code: 'greeting_timeout' });
    expect(r.durationMs).toBeGreaterThanOrEqual(1400);
    expect(r.hint).toMatch(/never sent its SMTP greeting/);
  });

  it('self-signed certificate without its CA: not trusted, mention NODE_EXTRA_CA_CERTS', async () => {
    const s = await smtp({ secure: true });
    const r = await testConnection(transport(), server({ port: s.port, protocol: 'smtps', tls: false }));
    expect(r).toMatchObject({ ok: false, code: 'tls_untrusted' });
    expect(r.hint).toContain('NODE_EXTRA_CA_CERTS');
  });

  it('STARTTLS not offered while tls is on: fails hard, never continues in plaintext', async () => {
    const s = await smtp({ starttls: false, auth: { user: 'alice', pass: PASSWORD }, allowInsecureAuth: true });
    const r = await testConnection(
      transport(s.ca),
      server({ port: s.port, tls: true, authMethod: 'basic', username: 'alice', password: PASSWORD }),
    );
    expect(r).toMatchObject({ ok: false, code: 'starttls_unavailable' });
    expect(s.authAttempts).toEqual([]);
    expect(r.transcript.join('\n')).not.toMatch(/C: AUTH/);
  });

  it('smtps against a plain SMTP port: protocol mismatch', async () => {
    const s = await smtp();
    const r = await testConnection(
      transport(s.ca),
      server({ port: s.port, protocol: 'smtps', tls: false, timeoutMs: 2000 }),
    );
    expect(r.ok).toBe(false);
    expect(['tls_protocol_mismatch', 'greeting_timeout', 'tls_failed']).toContain(r.code);
  });

  const replies: Array<[string, { code: number; message: string }, string, RegExp]> = [
    [
      '535 bad credentials',
      { code: 535, message: '5.7.8 Authentication credentials invalid' },
      'auth_failed',
      /user name or password/,
    ],
    [
      'Microsoft 5.7.139',
      {
        code: 535,
        message: '5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant',
      },
      'smtp_auth_disabled',
      /Authenticated SMTP/,
    ],
    [
      'Microsoft 5.7.30',
      { code: 535, message: '5.7.30 Basic authentication is not supported for Client Submission' },
      'basic_auth_retired',
      /OAuth 2\.0/,
    ],
    [
      'Gmail 534 5.7.9',
      { code: 534, message: '5.7.9 Application-specific password required' },
      'app_password_required',
      /app password/,
    ],
    [
      '530 must STARTTLS',
      { code: 530, message: '5.7.0 Must issue a STARTTLS command first' },
      'must_starttls',
      /STARTTLS/,
    ],
    ['421 busy', { code: 421, message: '4.7.0 Try again later, closing connection' }, 'server_busy', /retries/],
  ];
  for (const [label, reply, code, hint] of replies) {
    it(`AUTH answered ${label} → ${code}`, async () => {
      const s = await smtp({ auth: { user: 'alice', pass: PASSWORD }, onAuth: () => reply });
      const r = await testConnection(
        transport(s.ca),
        server({ port: s.port, authMethod: 'basic', username: 'alice', password: PASSWORD }),
      );
      expect(r).toMatchObject({ ok: false, code, responseCode: reply.code });
      expect(r.hint).toMatch(hint);
      expect(r.transcript.join('\n')).not.toContain(PASSWORD);
    });
  }

  it('421 at connect → server_busy', async () => {
    const s = await smtp({ onConnect: () => ({ code: 421, message: 'Too many connections' }) });
    const r = await testConnection(transport(s.ca), server({ port: s.port }));
    expect(r).toMatchObject({ ok: false, code: 'server_busy' });
  });

  it('a host name that does not resolve → dns_failed', async () => {
    const r = await testConnection(transport(), server({ port: 25, host: 'no-such-host.invalid', timeoutMs: 5000 }));
    expect(r.ok).toBe(false);
    expect(['dns_failed', 'timeout']).toContain(r.code);
  });
});

describe('sending errors are diagnosed', () => {
  const message = composeMessage(
    messageInput.parse({ to: 'rcpt@example.net', subject: 'hi', text: 'hello' }),
    { name: 'T', fromAddress: 'notify@example.com' },
    '{name}',
  );

  async function sendError(options: TestSmtpOptions): Promise<unknown> {
    const s = await smtp(options);
    try {
      await transport(s.ca).send(server({ port: s.port }), message);
    } catch (err) {
      return err;
    }
    throw new Error('expected the send to fail');
  }

  it('550 5.7.1 relaying denied → relay_denied, permanent', async () => {
    const d = diagnose(await sendError({ onRcptTo: () => ({ code: 550, message: '5.7.1 Relaying denied' }) }));
    expect(d).toMatchObject({ code: 'relay_denied', class: 'permanent', responseCode: 550 });
    expect(d.hint).toMatch(/host, the user name and password/);
  });

  it('554 relay access denied → relay_denied', async () => {
    const d = diagnose(
      await sendError({ onRcptTo: () => ({ code: 554, message: '5.7.1 <rcpt@example.net>: Relay access denied' }) }),
    );
    expect(d.code).toBe('relay_denied');
  });

  it('451 → temporary', async () => {
    const d = diagnose(
      await sendError({ onMailFrom: () => ({ code: 451, message: '4.3.0 Local error in processing' }) }),
    );
    expect(d).toMatchObject({ code: 'temporary_rejection', class: 'temporary', responseCode: 451 });
  });

  it('a dropped connection after DATA → connection_dropped, temporary', async () => {
    const d = diagnose(await sendError({ onData: () => 'drop' }));
    expect(d).toMatchObject({ code: 'connection_dropped', class: 'temporary' });
  });

  it('550 on DATA (content rejected) → rejected, permanent', async () => {
    const d = diagnose(await sendError({ onData: () => ({ code: 550, message: '5.6.0 Message content rejected' }) }));
    expect(d).toMatchObject({ code: 'rejected', class: 'permanent', responseCode: 550 });
  });
});
