import net from 'node:net';
import { describe, expect, it } from 'vitest';
import type { ResolvedServer } from '../../src/mail/servers.js';
import { createMailTransport, type MailTransport, type RawMessage } from '../../src/mail/transport.js';
import { createEgressPolicy } from '../../src/net/egress.js';
import { toMailTransportFailure } from '../../src/mail/transport-failure.js';
import { resolvedServerForTests } from '../fakes/mail-services.js';
import { useTransportRig } from '../fakes/transport-rig.js';

// Raw messages (the SMTP front's, kept as submitted) go out through mailgate's narrow pipelined client; with
// protocol logging on they go through nodemailer. Both must put the same bytes on the wire, and the narrow client
// must keep few connections busy with many messages.

const rig = useTransportRig();
const { log, smtp, scripted } = rig;

/** The narrow client; `nodemailer: true` takes the protocol-logging path, which is nodemailer's. */
function transport(options: { nodemailer?: boolean; ca?: string; maxConnections?: number } = {}): MailTransport {
  return rig.transport({
    ...(options.nodemailer ? { nodemailer: true } : {}),
    ...(options.ca ? { tlsCa: [options.ca] } : {}),
    ...(options.maxConnections ? { maxConnections: options.maxConnections } : {}),
  });
}

const plain = (port: number, extra: Partial<ResolvedServer> = {}) =>
  resolvedServerForTests({ port, tls: false, ...extra });

const raw = (body: string | Buffer, to = ['rcpt@example.net'], use8BitMime = false): RawMessage => ({
  raw: typeof body === 'string' ? Buffer.from(body, 'utf8') : body,
  envelope: { from: 'notify@example.com', to, ...(use8BitMime ? { use8BitMime } : {}) },
});

const TRICKY: Array<[string, Buffer]> = [
  ['leading dots', Buffer.from('Subject: a\r\n\r\n.leading dot\r\n..two dots\r\n.\r\nend\r\n')],
  ['a dot as the first byte', Buffer.from('.Subject: b\r\n\r\nbody\r\n')],
  ['bare LF', Buffer.from('Subject: c\n\nline one\nline two\n.dot after LF\n')],
  ['no final line end', Buffer.from('Subject: d\r\n\r\nno final line end')],
  ['bare CR, a dot after it, a CR at the end', Buffer.from('Subject: e\r\n\r\na\rb\r.c\r')],
  [
    '8-bit, not all of it UTF-8',
    Buffer.concat([Buffer.from('Subject: f\r\n\r\nÄÖÜ 日本語\r\n'), Buffer.from([0xff, 0xfe, 0x0d, 0x0a])]),
  ],
  ['an empty message', Buffer.alloc(0)],
  ['the end-of-data sequence inside', Buffer.from('Subject: g\r\n\r\nx\r\n.\r\ny\r\n\r\n.\r\n')],
];

/** A message of random bytes, rich in the ones that matter (CR, LF, dot, 8-bit). */
function randomMessage(seed: number): Buffer {
  let state = seed * 7919 + 1;
  const next = () => {
    state = (state * 1103515245 + 12345) & 0x7fffffff;
    return state;
  };
  const alphabet = [0x0d, 0x0a, 0x2e, 0x61, 0x20, 0xc3, 0xff, 0x0d, 0x0a, 0x2e];
  return Buffer.from(Array.from({ length: next() % 300 }, () => alphabet[next() % alphabet.length]!));
}

describe('the bytes on the wire', () => {
  it('are exactly what nodemailer sends for the same raw message, MAIL FROM and RCPT TO included', async () => {
    const sink = await scripted({ extensions: ['PIPELINING', '8BITMIME', 'SMTPUTF8'] });
    const messages = [...TRICKY.map(([, b]) => b), ...Array.from({ length: 40 }, (_, i) => randomMessage(i))];
    const wire = transport();
    const reference = transport({ nodemailer: true });
    // Domains in any case, an internationalized one, a recipient twice: nodemailer normalizes the envelope.
    const others = ['second@example.net', 'Second@EXAMPLE.net', 'second@Example.Net', 'idn@Bücher.example'];
    for (const [i, body] of messages.entries()) {
      const message = raw(body, [`r${i}@Example.NET`, ...others], i % 2 === 0);
      const sent = await wire.send(plain(sink.port), message);
      const expected = await reference.send(plain(sink.port, { id: 'srv_reference' }), message);
      expect(sent.accepted).toEqual(expected.accepted);
    }
    expect(sink.data).toHaveLength(messages.length * 2);
    for (let i = 0; i < messages.length; i++) {
      expect(sink.data[2 * i]!.equals(sink.data[2 * i + 1]!), `message ${i}`).toBe(true);
    }
    const envelopes = (connection: number) =>
      sink.lines
        .filter(
          (l) => l.startsWith(`${connection} `) && /^(MAIL|RCPT|DATA)/.test(l.slice(String(connection).length + 1)),
        )
        .map((l) => l.slice(String(connection).length + 1));
    expect(envelopes(1)).toEqual(envelopes(2));
    expect(envelopes(1)[0]).toBe('MAIL FROM:<notify@example.com> BODY=8BITMIME');
  });

  it('carry the envelope nodemailer would: domains lower-cased or punycoded, repeated recipients once', async () => {
    const sink = await scripted({ extensions: ['PIPELINING', '8BITMIME', 'SMTPUTF8'] });
    const envelopes: RawMessage['envelope'][] = [
      { from: 'Notify@Example.COM', to: ['Dest@Example.NET', 'dest@example.net', 'Dest@Example.NET'] },
      { from: 'a@example.com', to: ['x@jõgeva.ee', 'ü@jõgeva.ee', 'b@[192.0.2.1]'] },
      { from: '', to: ['bounce@example.net'] },
      { from: 'plain@example.com', to: ['one@example.net', 'two@example.net'] },
    ];
    const wire = transport();
    const reference = transport({ nodemailer: true });
    for (const envelope of envelopes) {
      const message = { raw: Buffer.from('Subject: e\r\n\r\nx\r\n'), envelope };
      await wire.send(plain(sink.port), message);
      await reference.send(plain(sink.port, { id: 'srv_reference' }), message);
    }
    const commands = (connection: number) =>
      sink.lines.filter((l) => /^\d+ (MAIL|RCPT)/.test(l) && l.startsWith(`${connection} `)).map((l) => l.slice(2));
    expect(commands(1)).toEqual(commands(2));
    expect(commands(1).slice(0, 3)).toEqual([
      'MAIL FROM:<Notify@example.com>',
      'RCPT TO:<Dest@example.net>',
      'RCPT TO:<dest@example.net>',
    ]);
  });

  it('a real SMTP server reads back each tricky message as nodemailer delivers it', async () => {
    const sink = await smtp({ starttls: false });
    const wire = transport();
    const reference = transport({ nodemailer: true });
    for (const [, body] of TRICKY) {
      await wire.send(plain(sink.port), raw(body, ['a@example.net'], true));
      await reference.send(plain(sink.port, { id: 'srv_reference' }), raw(body, ['a@example.net'], true));
    }
    await sink.waitFor(TRICKY.length * 2);
    for (let i = 0; i < TRICKY.length; i++) {
      expect(sink.messages[2 * i]!.raw, TRICKY[i]![0]).toBe(sink.messages[2 * i + 1]!.raw);
    }
  });
});

/** Counts the writes (write or writev) on client sockets to `port` while `work` runs. */
async function clientWrites(port: number, work: () => Promise<unknown>): Promise<number> {
  const proto = net.Socket.prototype as unknown as { _writeGeneric: (...args: unknown[]) => unknown };
  const original = proto._writeGeneric;
  let writes = 0;
  proto._writeGeneric = function (this: net.Socket, ...args: unknown[]) {
    if (this.remotePort === port) writes++;
    return original.apply(this, args);
  };
  try {
    await work();
  } finally {
    proto._writeGeneric = original;
  }
  return writes;
}

describe('pooled, pipelined sessions', () => {
  it('on an open session a message is two writes: MAIL FROM, every RCPT TO and DATA; then the data and the dot', async () => {
    const sink = await scripted();
    const t = transport();
    await t.send(plain(sink.port), raw('Subject: first\r\n\r\nx\r\n'));
    const message = raw('Subject: second\r\n\r\n.dot\r\nbody\r\n', ['a@example.net', 'b@example.net', 'c@example.net']);
    expect(await clientWrites(sink.port, () => t.send(plain(sink.port), message))).toBe(2);
    expect(sink.data[1]!.toString()).toBe('Subject: second\r\n\r\n..dot\r\nbody\r\n');
  });

  it('many concurrent messages share a few connections, each envelope in one write', async () => {
    const sink = await scripted();
    const t = transport({ maxConnections: 2 });
    const results = await Promise.all(
      Array.from({ length: 60 }, (_, i) =>
        t.send(
          plain(sink.port),
          raw(`Subject: ${i}\r\n\r\nbody ${i}\r\n`, [`r${i}@example.net`]),
          `<m${i}@example.com>`,
        ),
      ),
    );
    expect(sink.data).toHaveLength(60);
    expect(sink.connections).toBe(2);
    expect(results[7]).toEqual({
      messageId: '<m7@example.com>',
      accepted: ['r7@example.net'],
      rejected: [],
      response: '250 OK queued',
    });
    expect(sink.lines.filter((l) => / EHLO /.test(l))).toHaveLength(2);
  });

  it('with messages waiting, the next envelope goes in the same write as the data: one write per message', async () => {
    const sink = await scripted();
    const t = transport({ maxConnections: 1 });
    await t.send(plain(sink.port), raw('Subject: open\r\n\r\nx\r\n'));
    const writes = await clientWrites(sink.port, () =>
      Promise.all(
        Array.from({ length: 20 }, (_, i) =>
          t.send(plain(sink.port), raw(`Subject: ${i}\r\n\r\n.${i}\r\n`, [`r${i}@example.net`])),
        ),
      ),
    );
    // The first envelope alone, then each message's data with the next envelope behind it.
    expect(writes).toBe(21);
    expect(sink.data.slice(1).map((d) => d.toString())).toEqual(
      Array.from({ length: 20 }, (_, i) => `Subject: ${i}\r\n\r\n..${i}\r\n`),
    );
    expect(sink.lines.filter((l) => l.includes('RCPT TO')).slice(1)).toEqual(
      Array.from({ length: 20 }, (_, i) => `1 RCPT TO:<r${i}@example.net>`),
    );
  });

  it('a raw message over 1 MiB goes to nodemailer, streamed in pieces, with the same bytes on the wire', async () => {
    const sink = await scripted();
    const t = transport();
    const line = '.x'.repeat(35).concat('\r\n');
    const big = Buffer.from(`Subject: big\r\n\r\n${line.repeat(Math.ceil((1 << 20) / line.length) + 10)}`);
    await t.send(plain(sink.port), raw('Subject: open\r\n\r\nx\r\n'));
    // nodemailer opens its own connection and writes the message in chunks; one buffer would be one write.
    const writes = await clientWrites(sink.port, () => t.send(plain(sink.port), raw(big)));
    expect(writes).toBeGreaterThan(2);
    expect(sink.connections).toBe(2);
    expect(sink.data[1]!.equals(Buffer.from(big.toString().replace(/^\./gm, '..')))).toBe(true);
  });

  it('STARTTLS and AUTH PLAIN, then every message over the one authenticated session', async () => {
    const sink = await smtp({ auth: { user: 'alice', pass: 'secret' } });
    const t = transport({ ca: sink.ca, maxConnections: 1 });
    const s = resolvedServerForTests({ port: sink.port, authMethod: 'basic', username: 'alice', password: 'secret' });
    await Promise.all([1, 2, 3].map((i) => t.send(s, raw(`Subject: ${i}\r\n\r\nx\r\n`))));
    await sink.waitFor(3);
    expect(sink.messages.map((m) => [m.secure, m.authUser])).toEqual([
      [true, 'alice'],
      [true, 'alice'],
      [true, 'alice'],
    ]);
    expect(sink.connections).toBe(1);
    expect(sink.authAttempts).toEqual([{ method: 'PLAIN', user: 'alice' }]);
  });

  it('AUTH LOGIN when PLAIN is not offered, over implicit TLS', async () => {
    const sink = await smtp({ secure: true, auth: { user: 'bob', pass: 'pw' }, authMethods: ['LOGIN'] });
    const t = transport({ ca: sink.ca });
    const s = resolvedServerForTests({
      port: sink.port,
      protocol: 'smtps',
      tls: false,
      authMethod: 'basic',
      username: 'bob',
      password: 'pw',
    });
    await t.send(s, raw('Subject: login\r\n\r\nx\r\n'));
    await sink.waitFor(1);
    expect(sink.authAttempts).toEqual([{ method: 'LOGIN', user: 'bob' }]);
    expect(sink.messages[0]).toMatchObject({ secure: true, authUser: 'bob' });
  });

  it('through the egress policy: the name as entered is checked against the certificate', async () => {
    const sink = await smtp();
    const t = rig.transport({
      tlsCa: [sink.ca],
      egress: {
        policy: createEgressPolicy({ production: true, allow: ['127.0.0.1'] }),
        resolve: (_host, cb) => cb(null, [{ address: '127.0.0.1', family: 4 }]),
      },
    });
    await t.send(
      resolvedServerForTests({ host: 'localhost', port: sink.port }),
      raw('Subject: via egress\r\n\r\nx\r\n'),
    );
    await sink.waitFor(1);
    expect(sink.messages[0]!.secure).toBe(true);
    const wrongName = await t
      .send(
        resolvedServerForTests({ id: 'srv_imposter', host: 'imposter.test', port: sink.port }),
        raw('Subject: no\r\n\r\nx\r\n'),
      )
      .catch((e: unknown) => toMailTransportFailure(e));
    expect(wrongName).toMatchObject({
      kind: 'smtp',
      stage: 'ESOCKET',
      codes: ['ESOCKET', 'ERR_TLS_CERT_ALTNAME_INVALID'],
    });
    expect(sink.messages).toHaveLength(1);
  });

  it('the EHLO name is the server setting', async () => {
    const sink = await smtp({ starttls: false });
    await transport().send(plain(sink.port, { ehloName: 'mg.example.org' }), raw('Subject: n\r\n\r\nx\r\n'));
    await sink.waitFor(1);
    expect(sink.messages[0]!.ehlo).toBe('mg.example.org');
  });

  it('a server without PIPELINING gets its messages through nodemailer, every later one too', async () => {
    const sink = await scripted({ extensions: ['8BITMIME'] });
    const t = transport();
    await t.send(plain(sink.port), raw('Subject: 1\r\n\r\nx\r\n'));
    await t.send(plain(sink.port), raw('Subject: 2\r\n\r\nx\r\n'));
    expect(sink.data).toHaveLength(2);
    // The narrow client's look (its connection ends with QUIT at once), then nodemailer's one connection.
    expect(sink.connections).toBe(2);
    const first = sink.lines.filter((l) => l.startsWith('1 ')).map((l) => l.slice(2));
    expect(first).toEqual([expect.stringMatching(/^EHLO /), 'QUIT']);
  });

  it('an idle session ends with QUIT after the server timeout', async () => {
    const sink = await scripted();
    const t = transport();
    await t.send(plain(sink.port, { timeoutMs: 150 }), raw('Subject: idle\r\n\r\nx\r\n'));
    await sink.closed(1);
    expect(sink.lines.at(-1)).toBe('1 QUIT');
  });

  it('close() ends idle sessions with QUIT', async () => {
    const sink = await scripted();
    const t = createMailTransport({ log });
    await t.send(plain(sink.port), raw('Subject: bye\r\n\r\nx\r\n'));
    await t.close();
    await sink.closed(1);
    expect(sink.lines.at(-1)).toBe('1 QUIT');
  });

  it('invalidate while a message is in flight: it finishes on its session, the next message opens a new one', async () => {
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    let arrived!: () => void;
    const inData = new Promise<void>((r) => (arrived = r));
    const sink = await smtp({
      starttls: false,
      beforeDataReply: async () => {
        arrived();
        await held;
      },
    });
    const t = transport();
    const s = plain(sink.port);
    const first = t.send(s, raw('Subject: in flight\r\n\r\nx\r\n'));
    await inData;
    t.invalidate(s.id);
    release();
    await expect(first).resolves.toMatchObject({ accepted: ['rcpt@example.net'] });
    await t.send(s, raw('Subject: after\r\n\r\nx\r\n'));
    expect(sink.messages).toHaveLength(2);
    expect(sink.connections).toBe(2);
  });
});
