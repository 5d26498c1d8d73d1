import { once } from 'node:events';
import net from 'node:net';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/log.js';
import { ChunkCoalescer } from '../../src/mail/coalesce.js';
import { composeMessage, messageInput } from '../../src/mail/compose.js';
import type { ResolvedServer } from '../../src/mail/servers.js';
import { createMailTransport, type MailTransport } from '../../src/mail/transport.js';
import { resolvedServerForTests } from '../fakes/mail-services.js';
import { startTestSmtp, type TestSmtp } from '../fakes/smtp-server.js';

// Every socket write is a system call (and a TLS record under STARTTLS); nodemailer's MIME builder emits a
// chunk per header block, boundary and part, each of which became its own write. These tests count the writes
// a send makes on the client's socket, and check the message still arrives byte for byte.

let sink: TestSmtp;
let transport: MailTransport;
const server: ResolvedServer = resolvedServerForTests({
  id: 'srv_writes',
  name: 'Writes',
  emailPrefix: null,
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

/** Counts the writes (write or writev) on client sockets to the sink while `work` runs. */
async function clientWrites(work: () => Promise<unknown>): Promise<number> {
  const proto = net.Socket.prototype as unknown as { _writeGeneric: (...args: unknown[]) => unknown };
  const original = proto._writeGeneric;
  let writes = 0;
  proto._writeGeneric = function (this: net.Socket, ...args: unknown[]) {
    if (this.remotePort === sink.port) writes++;
    return original.apply(this, args);
  };
  try {
    await work();
  } finally {
    proto._writeGeneric = original;
  }
  return writes;
}

const send = (i: number, extra: Record<string, unknown> = {}) =>
  transport.send(
    server,
    composeMessage(
      messageInput.parse({ to: `rcpt${i}@example.net`, subject: `s ${i}`, text: `message ${i}`, ...extra }),
      server,
      '{name}',
    ),
  );

describe('socket writes per message', () => {
  it('a small text + HTML message on an open connection: the envelope in one write, the data in two', async () => {
    await send(0); // opens the pooled connection (greeting, EHLO)
    const writes = await clientWrites(() => send(1, { html: '<p>message 1</p>' }));
    // MAIL FROM + RCPT TO + DATA corked (PIPELINING), the whole MIME message, the final dot. Before: 10.
    expect(writes).toBeLessThanOrEqual(3);
    await sink.waitFor(2);
    const raw = sink.messages[1]!.raw;
    expect(raw).toContain('message 1');
    expect(raw).toContain('<p>message 1</p>');
    expect(raw).toMatch(/Content-Type: multipart\/alternative/);
  });

  it('a large message still streams in pieces instead of one buffer', async () => {
    const text = 'x'.repeat(70).concat('\r\n').repeat(3000); // about 216 kB
    const writes = await clientWrites(() => send(2, { text }));
    expect(writes).toBeGreaterThanOrEqual(3);
    await sink.waitFor(3);
    expect(sink.messages[2]!.raw.replace(/\r\n/g, '\n')).toContain(text.replace(/\r\n/g, '\n').slice(0, 10_000));
  });
});

describe('ChunkCoalescer', () => {
  it('joins small chunks up to the limit and keeps every byte in order', async () => {
    const pieces = Array.from({ length: 100 }, (_, i) => Buffer.from(`piece ${i};`));
    const out: Buffer[] = [];
    // 'data' events, not an async iterator: read() would hand over everything buffered as one chunk.
    const stream = Readable.from(pieces).pipe(new ChunkCoalescer(200));
    stream.on('data', (chunk: Buffer) => out.push(chunk));
    await once(stream, 'end');
    expect(Buffer.concat(out).toString()).toBe(Buffer.concat(pieces).toString());
    expect(out.length).toBeGreaterThan(1);
    expect(out.length).toBeLessThan(pieces.length / 10);
    for (const chunk of out.slice(0, -1)) expect(chunk.length).toBeGreaterThanOrEqual(200);
  });
});
