/**
 * SMTP load generator for bench/run.ts, in its own process like a real app: prints "ready", waits for a line on
 * stdin, then sends N small messages through one nodemailer pool (C connections) to host:port and prints its own
 * CPU time from "go" to the last 250 as one JSON line. With a password it uses STARTTLS (any certificate) and AUTH,
 * as an app pointed at mailgate's submission front does; without, plain SMTP, as the same app pointed at the sink.
 */
import { once } from 'node:events';
import nodemailer from 'nodemailer';

const [host, portText, nText, connectionsText, password = ''] = process.argv.slice(2);
const n = Number(nText);
const transport = nodemailer.createTransport({
  pool: true,
  host,
  port: Number(portText),
  secure: false,
  maxConnections: Number(connectionsText),
  maxMessages: Infinity,
  logger: false,
  ...(password
    ? { requireTLS: true, tls: { rejectUnauthorized: false }, auth: { user: 'bench', pass: password } }
    : { ignoreTLS: true }),
});

process.stdout.write('ready\n');
process.stdin.resume();
await once(process.stdin, 'data');
const cpuAtStart = process.cpuUsage();
const t0 = performance.now();
await Promise.all(
  Array.from({ length: n }, (_, i) =>
    transport.sendMail({
      from: '"Bench app" <bench@example.com>',
      to: `rcpt${i}@example.net`,
      subject: `bench ${i}`,
      text: `message ${i}`,
      html: `<p>message ${i}</p>`,
    }),
  ),
);
const cpu = process.cpuUsage(cpuAtStart);
const elapsedMs = performance.now() - t0;
transport.close();
process.stdout.write(`${JSON.stringify({ cpuMs: (cpu.user + cpu.system) / 1000, elapsedMs })}\n`);
process.exit(0);
