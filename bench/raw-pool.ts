import http from 'node:http';
import type net from 'node:net';
import nodemailer from 'nodemailer';
import type { Bench } from './context.js';
import type { PhaseResult } from './measure.js';

const tiny = (i: number) => ({ to: `rcpt${i}@example.net`, subject: `bench ${i}`, text: `message ${i}` });

function rawPool(bench: Bench) {
  return nodemailer.createTransport({
    pool: true,
    host: '127.0.0.1',
    port: bench.sink.port,
    secure: false,
    maxConnections: bench.options.connections,
    maxMessages: Infinity,
    logger: false,
  });
}

/** The message (a) sends for a request body: what the send module would build, without its checks. */
function rawMail(m: { to: string; subject: string; text: string }) {
  return {
    from: '"Bench (mailgate)" <bench@example.com>',
    to: m.to,
    subject: m.subject,
    text: m.text,
    html: `<p>${m.text}</p>`,
    envelope: { from: 'bench@example.com', to: [m.to] },
  };
}

/** Phase (a): N messages through a raw nodemailer pool, the baseline. */
export async function rawNodemailer(bench: Bench): Promise<PhaseResult> {
  const { n, connections } = bench.options;
  const transport = rawPool(bench);
  await Promise.all(Array.from({ length: n }, (_, i) => transport.sendMail(rawMail(tiny(i)))));
  transport.close();
  return { note: `pool of ${connections}, maxMessages ∞` };
}

/**
 * Phase (m)'s server: parses the JSON body and hands it to the raw pool, answering 202 at once: no API key, no
 * validation, nothing stored, messages lost on a crash. No real service would ship it; it shows how much of
 * (a) is left on this machine once an HTTP client and an HTTP server share the cores, which bounds (c).
 */
export async function startMinimalFront(bench: Bench): Promise<{ url: string; close(): Promise<void> }> {
  const transport = rawPool(bench);
  const front = http.createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (d: string) => (body += d));
    req.on('end', () => {
      void transport.sendMail(rawMail(JSON.parse(body) as { to: string; subject: string; text: string }));
      res.writeHead(202, { 'content-type': 'application/json' });
      res.end('{"id":"x","status":"queued"}');
    });
  });
  await new Promise<void>((r) => front.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(front.address() as net.AddressInfo).port}`,
    async close() {
      transport.close();
      front.closeAllConnections();
      await new Promise<void>((r) => front.close(() => r()));
    },
  };
}
