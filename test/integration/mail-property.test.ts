import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/log.js';
import { composeMessage, messageInput } from '../../src/mail/compose.js';
import type { ResolvedServer } from '../../src/mail/servers.js';
import { createMailTransport, type MailTransport } from '../../src/mail/transport.js';
import { resolvedServerForTests } from '../fakes/mail-services.js';
import { startTestSmtp, type TestSmtp } from '../fakes/smtp-server.js';

// For any input the validator accepts, the RCPT TO list the SMTP server sees equals the validated recipient
// list, and the message carries exactly the headers mailgate builds — no line an input smuggled in.
// Inputs mix valid values with CR/LF/NUL, header-looking text and malformed addresses.

let sink: TestSmtp;
let transport: MailTransport;
const server: ResolvedServer = resolvedServerForTests({
  id: 'srv_prop',
  name: 'Prop',
  emailPrefix: '[p]',
  port: 0,
  tls: false,
});

beforeAll(async () => {
  sink = await startTestSmtp({ starttls: false });
  server.port = sink.port;
  transport = createMailTransport({ log: createLogger({ level: 'silent' }) });
});
afterAll(async () => {
  await transport.close();
  await sink.close();
});

const nasty = fc.constantFrom(
  '\r\n',
  '\n',
  '\r',
  '\0',
  'Bcc: evil@example.org',
  '\r\nX-Injected: 1',
  ' ',
  ':',
  '<',
  '>',
  ',',
  '"',
  'é',
  '日本',
);
const label = fc.stringMatching(/^[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?$/);
const local = fc.oneof(
  { weight: 9, arbitrary: fc.stringMatching(/^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]{1,12}(\.[A-Za-z0-9_+-]{1,6})?$/) },
  { weight: 1, arbitrary: fc.string({ maxLength: 8 }) },
);
const validAddress = fc
  .tuple(local, label, fc.constantFrom('com', 'net', 'org', 'io'))
  .map(([l, d, t]) => `${l}@${d}.${t}`);
const address = fc.oneof(
  { weight: 15, arbitrary: validAddress },
  { weight: 1, arbitrary: fc.tuple(validAddress, nasty).map(([a, n]) => a + n) },
);
const text = fc.oneof(
  { weight: 8, arbitrary: fc.string({ maxLength: 40 }) },
  {
    weight: 1,
    arbitrary: fc.tuple(fc.string({ maxLength: 10 }), nasty, fc.string({ maxLength: 10 })).map((p) => p.join('')),
  },
);
const list = fc.oneof(address, fc.array(address, { minLength: 0, maxLength: 4 }));
const input = fc.record(
  {
    to: list,
    cc: list,
    bcc: list,
    subject: text,
    fromName: text,
    replyTo: address,
    text: fc.string({ minLength: 1, maxLength: 60 }),
    html: fc.constantFrom('<p>hi</p>', '<b>x</b>\r\nBcc: a@b.com'),
  },
  { requiredKeys: ['to', 'subject'] },
);

const EXPECTED_HEADERS = new Set([
  'from',
  'to',
  'cc',
  'reply-to',
  'subject',
  'message-id',
  'date',
  'mime-version',
  'content-type',
]);

describe('property: the wire matches the validated input', () => {
  it('RCPT TO = validated recipients; no header beyond those mailgate builds', async () => {
    let accepted = 0;
    await fc.assert(
      fc.asyncProperty(input, async (raw) => {
        const parsed = messageInput.safeParse({ text: 'body', ...raw });
        if (!parsed.success) return;
        accepted++;
        const before = sink.messages.length;
        const composed = composeMessage(parsed.data, server, '{name} (mailgate)');
        await transport.send(server, composed);
        const got = sink.messages[before]!;
        // Worked out here, not with the code under test: every To, Cc and Bcc address, each once whatever its case.
        const wanted = [...parsed.data.to, ...(parsed.data.cc ?? []), ...(parsed.data.bcc ?? [])].map((a) =>
          a.toLowerCase(),
        );
        const rcpt = got.to.map((a) => a.toLowerCase());
        expect(new Set(rcpt).size, 'an address given twice gets one copy').toBe(rcpt.length);
        expect([...rcpt].sort()).toEqual([...new Set(wanted)].sort());
        expect(got.from).toBe('notify@example.com');
        const names = got.headers.map((h) => h.slice(0, h.indexOf(':')).toLowerCase());
        for (const n of names) expect(EXPECTED_HEADERS.has(n), `unexpected header ${n}`).toBe(true);
        expect(names.filter((n) => n === 'subject')).toHaveLength(1);
        expect(names.filter((n) => n === 'from')).toHaveLength(1);
        expect(names).not.toContain('bcc');
      }),
      { numRuns: 200 },
    );
    expect(accepted).toBeGreaterThan(40);
  });
});
