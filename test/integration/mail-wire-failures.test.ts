import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { diagnose } from '../../src/mail/diagnose.js';
import type { ResolvedServer } from '../../src/mail/servers.js';
import { type MailTransport, type RawMessage, type TransportDeps } from '../../src/mail/transport.js';
import { toMailTransportFailure } from '../../src/mail/transport-failure.js';
import { createEgressPolicy } from '../../src/net/egress.js';
import { AppError } from '../../src/errors.js';
import { resolvedServerForTests } from '../fakes/mail-services.js';
import { useTransportRig } from '../fakes/transport-rig.js';
import { closedPort, startSilentServer } from '../fakes/smtp-server.js';

// Every failure of the narrow client must read as nodemailer's does (same stage, reply, command, rejected
// recipients, diagnosis), because the queue decides retry, failure or pause from those fields. Each scenario runs
// against nodemailer (the protocol-logging path) and against the narrow client, on servers scripted alike.

const rig = useTransportRig();
const { smtp, scripted, transport } = rig;

const plain = (port: number, extra: Partial<ResolvedServer> = {}) =>
  resolvedServerForTests({ port, tls: false, ...extra });

const raw = (to = ['rcpt@example.net'], subject = 'hello'): RawMessage => ({
  raw: Buffer.from(`Subject: ${subject}\r\n\r\nbody\r\n`),
  envelope: { from: 'notify@example.com', to },
});

/** What the queue reads of a failure. */
async function failureOf(t: MailTransport, server: ResolvedServer, message = raw()) {
  const error = await t.send(server, message).then(
    () => {
      throw new Error('the message was accepted');
    },
    (e: unknown) => e,
  );
  const f = toMailTransportFailure(error);
  return {
    kind: f.kind,
    message: f.message,
    stage: f.stage,
    response: f.response,
    responseCode: f.responseCode,
    command: f.command,
    timeout: f.timeout,
    rejectedErrors: f.rejectedErrors,
    diagnosis: diagnose(error, { host: server.host, port: server.port }).code,
  };
}

/** Runs `scenario` against nodemailer and the narrow client, each with a fresh server; returns both outcomes. */
async function both<T>(scenario: (t: (deps?: Partial<TransportDeps>) => MailTransport) => Promise<T>): Promise<[T, T]> {
  const reference = await scenario((deps = {}) => transport({ ...deps, nodemailer: true }));
  const wire = await scenario((deps = {}) => transport(deps));
  return [wire, reference];
}

describe('refusals read as nodemailer reports them', () => {
  it('some recipients refused: the others get the message, the refused are listed with their reply', async () => {
    const [wire, reference] = await both(async (t) => {
      const sink = await smtp({
        starttls: false,
        onRcptTo: (a) => (a.startsWith('bad') ? { code: 550, message: '5.1.1 no such user' } : undefined),
      });
      const result = await t().send(plain(sink.port), raw(['good@example.net', 'bad@example.net', 'also@example.net']));
      await sink.waitFor(1);
      return { result: { ...result, messageId: undefined }, delivered: sink.messages[0]!.to };
    });
    expect(wire).toEqual(reference);
    expect(wire.result.rejected).toEqual([
      { address: 'bad@example.net', responseCode: 550, response: '550 5.1.1 no such user' },
    ]);
  });

  it('every recipient refused: EENVELOPE with the temporary reply when there is one; the session is reused after RSET', async () => {
    const [wire, reference] = await both(async (t) => {
      const sink = await scripted({
        onCommand: (verb, line) =>
          verb === 'RCPT' && line.includes('later')
            ? '450 4.2.1 try later'
            : verb === 'RCPT' && line.includes('bad')
              ? '550 5.1.1 unknown'
              : undefined,
      });
      const tr = t();
      const failure = await failureOf(tr, plain(sink.port), raw(['bad@example.net', 'later@example.net']));
      await tr.send(plain(sink.port), raw(['good@example.net']));
      return { failure, connections: sink.connections, rset: sink.lines.filter((l) => l.endsWith(' RSET')).length };
    });
    // nodemailer opens a second connection while its first is still resetting; the narrow client waits for RSET.
    expect(wire.failure).toEqual(reference.failure);
    expect(wire.failure).toMatchObject({
      stage: 'EENVELOPE',
      responseCode: 450,
      command: 'RCPT TO',
      diagnosis: 'temporary_rejection',
    });
    expect(wire.failure.rejectedErrors).toHaveLength(2);
    expect(wire).toMatchObject({ connections: 1, rset: 1 });
  });

  for (const [reply, diagnosis] of [
    ['451 4.3.0 local problem', 'temporary_rejection'],
    ['554 5.5.0 no DATA for you', 'rejected'],
  ] as const) {
    it(`DATA answered ${reply.slice(0, 3)}: EENVELOPE "Data command failed", the session stays`, async () => {
      const [wire, reference] = await both(async (t) => {
        let first = true;
        const sink = await scripted({
          onCommand: (verb) => {
            if (verb !== 'DATA' || !first) return undefined;
            first = false;
            return reply;
          },
        });
        const tr = t();
        const failure = await failureOf(tr, plain(sink.port));
        await tr.send(plain(sink.port), raw());
        return { failure, connections: sink.connections, delivered: sink.data.length };
      });
      expect(wire.failure).toEqual(reference.failure);
      expect(wire.failure).toMatchObject({ stage: 'EENVELOPE', command: 'DATA', diagnosis });
      expect(wire).toMatchObject({ connections: 1, delivered: 1 });
    });

    it(`the message answered ${reply.slice(0, 3)} after its final dot: EMESSAGE, the session stays`, async () => {
      const [wire, reference] = await both(async (t) => {
        let first = true;
        const sink = await scripted({
          onMessage: () => {
            if (!first) return undefined;
            first = false;
            return reply;
          },
        });
        const tr = t();
        const failure = await failureOf(tr, plain(sink.port));
        await tr.send(plain(sink.port), raw());
        return { failure, connections: sink.connections, delivered: sink.data.length };
      });
      expect(wire.failure).toEqual(reference.failure);
      expect(wire.failure).toMatchObject({ stage: 'EMESSAGE', command: 'DATA', diagnosis });
      expect(wire).toMatchObject({ connections: 1, delivered: 2 });
    });
  }

  for (const step of ['MAIL', 'RCPT', 'end of data'] as const) {
    it(`421 at ${step}: the session is closed, the next message opens a new one`, async () => {
      const [wire, reference] = await both(async (t) => {
        let first = true;
        const once = () => {
          if (!first) return undefined;
          first = false;
          return '421 4.3.2 shutting down';
        };
        const sink = await scripted({
          onCommand: (verb) => (verb === step ? once() : undefined),
          onMessage: () => (step === 'end of data' ? once() : undefined),
        });
        const tr = t();
        const failure = await failureOf(tr, plain(sink.port));
        await tr.send(plain(sink.port), raw());
        return { failure, connections: sink.connections };
      });
      expect(wire).toEqual(reference);
      expect(wire.failure).toMatchObject({ responseCode: 421, diagnosis: 'server_busy' });
      expect(wire.connections).toBe(2);
    });
  }
});

describe('connections that go away', () => {
  it('cut after the final dot: a connection failure (maybe delivered), not tried again here', async () => {
    const [wire, reference] = await both(async (t) => {
      const sink = await scripted({ onMessage: (_data, connection) => (connection === 1 ? 'drop' : undefined) });
      const failure = await failureOf(t(), plain(sink.port));
      return { failure, received: sink.data.length };
    });
    expect(wire).toEqual(reference);
    expect(wire.failure).toMatchObject({ stage: 'ECONNECTION', diagnosis: 'connection_dropped' });
    expect(wire.received).toBe(1);
  });

  it('a reused session the server dropped before the message: it goes over a fresh one', async () => {
    const [wire, reference] = await both(async (t) => {
      let mails = 0;
      const sink = await scripted({
        onCommand: (verb, _line, connection) =>
          verb === 'MAIL' && connection === 1 && ++mails === 2 ? 'drop' : undefined,
      });
      const tr = t();
      await tr.send(plain(sink.port), raw(['a@example.net']));
      const second = await tr.send(plain(sink.port), raw(['b@example.net']));
      return { accepted: second.accepted, received: sink.data.length, connections: sink.connections };
    });
    expect(wire).toEqual(reference);
    expect(wire).toEqual({ accepted: ['b@example.net'], received: 2, connections: 2 });
  });

  it('a message behind a refused one, its envelope already sent with the data, still goes out on the session', async () => {
    const sink = await scripted({ onMessage: (data) => (data.includes('refuse me') ? '554 5.6.0 no' : undefined) });
    const t = transport({ maxConnections: 1 });
    const s = plain(sink.port);
    await t.send(s, raw());
    const [refused, next] = await Promise.allSettled([
      t.send(s, raw(['a@example.net'], 'refuse me')),
      t.send(s, raw(['b@example.net'])),
    ]);
    expect(refused).toMatchObject({ status: 'rejected', reason: { stage: 'EMESSAGE', responseCode: 554 } });
    expect(next).toMatchObject({ status: 'fulfilled', value: { accepted: ['b@example.net'] } });
    expect(sink.connections).toBe(1);
    expect(sink.lines.some((l) => l.endsWith('RSET'))).toBe(false);
  });

  it('a cut after a message with the next envelope behind it: the first may be delivered (failed here), the next goes over a fresh session', async () => {
    const sink = await scripted({
      onMessage: (data, connection) => (connection === 1 && data.includes('cut') ? 'drop' : undefined),
    });
    const t = transport({ maxConnections: 1 });
    const s = plain(sink.port);
    await t.send(s, raw());
    const [cut, next] = await Promise.allSettled([
      t.send(s, raw(['a@example.net'], 'cut')),
      t.send(s, raw(['b@example.net'], 'next')),
    ]);
    expect(cut).toMatchObject({ status: 'rejected', reason: { stage: 'ECONNECTION' } });
    expect(next).toMatchObject({ status: 'fulfilled', value: { accepted: ['b@example.net'] } });
    expect(sink.data.map((d) => d.toString().split('\r\n')[0])).toEqual([
      'Subject: hello',
      'Subject: cut',
      'Subject: next',
    ]);
    expect(sink.connections).toBe(2);
  });

  it('a server that closes the session in the same packet as its EHLO reply: the message fails, the next one gets a new session', async () => {
    // The 421 arrives with the EHLO reply, so the session is gone before it is handed to the pool.
    const sink = await scripted({
      onCommand: (verb, _line, connection) =>
        verb === 'EHLO' && connection === 1 ? '250-scripted\r\n250 PIPELINING\r\n421 4.3.2 shutting down' : undefined,
    });
    const t = transport({ maxConnections: 1 });
    const s = plain(sink.port);
    await expect(t.send(s, raw(['a@example.net']))).rejects.toMatchObject({ stage: 'ECONNECTION' });
    await expect(t.send(s, raw(['b@example.net']))).resolves.toMatchObject({ accepted: ['b@example.net'] });
    expect(sink.connections).toBe(2);
  });

  it('a server that closes the session in the same packet as a setup reply with a step to follow: the step fails, nothing hangs', async () => {
    // STARTTLS is offered, so the client has another command to send on a session the 421 already closed.
    const sink = await scripted({
      onCommand: (verb, _line, connection) =>
        verb === 'EHLO' && connection === 1
          ? '250-scripted\r\n250-STARTTLS\r\n250 PIPELINING\r\n421 4.3.2 shutting down'
          : undefined,
    });
    const t = transport({ maxConnections: 1 });
    const s = plain(sink.port);
    await expect(t.send(s, raw(['a@example.net']))).rejects.toMatchObject({ stage: 'ECONNECTION' });
    await expect(t.send(s, raw(['b@example.net']))).resolves.toMatchObject({ accepted: ['b@example.net'] });
    expect(sink.lines.filter((l) => l.includes('STARTTLS'))).toEqual([]);
  });

  it('a silent server (a socket timeout, as nodemailer reports it), a refused connection', async () => {
    const silent = await startSilentServer();
    rig.keep(silent);
    const refused = await closedPort();
    const [wire, reference] = await both(async (t) => ({
      silent: await failureOf(t(), plain(silent.port, { timeoutMs: 150 })),
      refused: await failureOf(t(), plain(refused)),
    }));
    expect(wire).toEqual(reference);
    expect([wire.silent.diagnosis, wire.refused.diagnosis]).toEqual(['timeout', 'connection_refused']);
  });
});

describe('TLS, credentials and the egress policy', () => {
  it('TLS required but STARTTLS not offered: fails hard, nothing sent in plaintext', async () => {
    const [wire, reference] = await both(async (t) => {
      const sink = await smtp({ starttls: false });
      const failure = await failureOf(t({ tlsCa: [sink.ca] }), resolvedServerForTests({ port: sink.port, tls: true }));
      return { failure, received: sink.messages.length };
    });
    expect(wire).toEqual(reference);
    expect(wire.failure).toMatchObject({ stage: 'ETLS', command: 'STARTTLS', diagnosis: 'starttls_unavailable' });
    expect(wire.received).toBe(0);
  });

  it('an untrusted certificate, over implicit TLS and over STARTTLS', async () => {
    const [wire, reference] = await both(async (t) => {
      const implicit = await smtp({ secure: true });
      const starttls = await smtp();
      return {
        implicit: await failureOf(t(), resolvedServerForTests({ port: implicit.port, protocol: 'smtps', tls: false })),
        starttls: await failureOf(t(), resolvedServerForTests({ port: starttls.port })),
      };
    });
    expect(wire).toEqual(reference);
    expect([wire.implicit.diagnosis, wire.starttls.diagnosis]).toEqual(['tls_untrusted', 'tls_untrusted']);
  });

  it('a port that is not SMTP: its banner is not repeated', async () => {
    const banner = net.createServer((socket) => {
      socket.on('error', () => undefined);
      socket.end('SSH-2.0-OpenSSH_9.6 secret-build\r\n');
    });
    await new Promise<void>((resolve) => banner.listen(0, '127.0.0.1', resolve));
    rig.keep({ close: () => new Promise<void>((resolve) => banner.close(() => resolve())) });
    const port = (banner.address() as net.AddressInfo).port;
    const [wire, reference] = await both(async (t) => failureOf(t(), plain(port)));
    expect(wire).toEqual(reference);
    expect(wire.diagnosis).toBe('not_smtp');
  });

  it('a wrong password: EAUTH 535, the server is to be paused', async () => {
    const [wire, reference] = await both(async (t) => {
      const sink = await smtp({ auth: { user: 'alice', pass: 'right' } });
      return failureOf(
        t({ tlsCa: [sink.ca] }),
        resolvedServerForTests({ port: sink.port, authMethod: 'basic', username: 'alice', password: 'wrong' }),
      );
    });
    expect(wire).toEqual(reference);
    expect(wire).toMatchObject({ stage: 'EAUTH', responseCode: 535, diagnosis: 'auth_failed' });
  });

  it('XOAUTH2: a rejected first token is refreshed once (force) and the message goes out', async () => {
    const [wire, reference] = await both(async (t) => {
      const sink = await smtp({ tokens: new Map([['box@example.com', 'fresh']]) });
      const calls: boolean[] = [];
      const tr = t({
        tlsCa: [sink.ca],
        grants: { grantForServer: async () => ({ grantId: 'g1', mailbox: 'box@example.com', status: 'active' }) },
        tokens: {
          async getAccessToken(_grantId, { force }) {
            calls.push(force);
            return { accessToken: force ? 'fresh' : 'stale', expiresAt: Date.now() + 3_600_000 };
          },
        },
      });
      const s = resolvedServerForTests({ port: sink.port, authMethod: 'oauth2' });
      await tr.send(s, raw());
      await tr.send(s, raw());
      await sink.waitFor(2);
      return { calls, auth: sink.authAttempts, users: sink.messages.map((m) => m.authUser) };
    });
    expect(wire).toEqual(reference);
    expect(wire.calls).toEqual([false, true]);
    expect(wire.users).toEqual(['box@example.com', 'box@example.com']);
  });

  it('XOAUTH2 with a token that comes after the session timed out: the message fails, nothing hangs', async () => {
    const sink = await scripted({
      extensions: ['PIPELINING', 'AUTH XOAUTH2'],
      onCommand: (verb) => (verb === 'AUTH' ? '235 2.7.0 accepted' : undefined),
    });
    let calls = 0;
    const t = transport({
      maxConnections: 1,
      grants: { grantForServer: async () => ({ grantId: 'g1', mailbox: 'box@example.com', status: 'active' }) },
      tokens: {
        async getAccessToken() {
          // The first token is slow: it arrives once the client has ended the idle session.
          if (++calls === 1) await sink.closed(1);
          return { accessToken: 'token', expiresAt: Date.now() + 3_600_000 };
        },
      },
    });
    const s = plain(sink.port, { authMethod: 'oauth2', timeoutMs: 100 });
    await expect(t.send(s, raw(['a@example.net']))).rejects.toMatchObject({ stage: 'ECONNECTION' });
    await expect(t.send(s, raw(['b@example.net']))).resolves.toMatchObject({ accepted: ['b@example.net'] });
    expect(sink.lines.filter((l) => l.startsWith('1 AUTH'))).toEqual([]);
  });

  it('XOAUTH2 without a token (the provider is down): token_unavailable, nothing sent', async () => {
    const [wire, reference] = await both(async (t) => {
      const sink = await smtp({ tokens: new Map([['box@example.com', 'fresh']]) });
      const tr = t({
        tlsCa: [sink.ca],
        grants: { grantForServer: async () => ({ grantId: 'g1', mailbox: 'box@example.com', status: 'active' }) },
        tokens: {
          async getAccessToken() {
            throw new AppError('provider_unavailable', { message: 'token endpoint answered 503' });
          },
        },
      });
      return failureOf(tr, resolvedServerForTests({ port: sink.port, authMethod: 'oauth2' }));
    });
    expect(wire).toEqual(reference);
    expect(wire).toMatchObject({ kind: 'token_unavailable', diagnosis: 'oauth_token_unavailable' });
  });

  it('the egress policy refuses the address: egress_denied before any connection', async () => {
    const [wire, reference] = await both(async (t) => {
      const sink = await scripted();
      const egress = {
        policy: createEgressPolicy({ production: true, allow: [] }),
        resolve: (_h: string, cb: (e: null, a: { address: string; family: number }[]) => void) =>
          cb(null, [{ address: '127.0.0.1', family: 4 }]),
      };
      const failure = await failureOf(t({ egress }), plain(sink.port, { host: 'relay.internal.test' }));
      return { failure, connections: sink.connections };
    });
    expect(wire).toEqual(reference);
    expect(wire).toMatchObject({ failure: { kind: 'egress_denied', diagnosis: 'egress_denied' }, connections: 0 });
  });
});
