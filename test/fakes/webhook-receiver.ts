import { createHmac, timingSafeEqual } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A local webhook receiver: checks every POST's Mailgate-Signature with its own HMAC code (not mailgate's), counts
 * requests and the events it accepted. `mode` decides the answer: 200, 500, or no answer at all (hang).
 */

export interface ReceivedEvent {
  id: string;
  type: string;
  occurredAt: string;
  target: string;
  message: string;
  hint: string;
}

export interface WebhookReceiver {
  url: string;
  mode: 'ok' | '500' | 'hang';
  /** Every request, whatever was answered. */
  requests: number;
  /** Events accepted (answered 200) with a valid signature. */
  accepted: ReceivedEvent[];
  /** Requests whose signature did not verify. */
  badSignatures: number;
  ofType(type: string): ReceivedEvent[];
  close(): Promise<void>;
}

export function verify(secret: string, body: string, header: string): boolean {
  const match = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(header);
  if (!match) return false;
  const expected = createHmac('sha256', secret).update(`${match[1]}.${body}`).digest();
  return timingSafeEqual(expected, Buffer.from(match[2]!, 'hex'));
}

export async function startWebhookReceiver(secret: string): Promise<WebhookReceiver> {
  const receiver: WebhookReceiver = {
    url: '',
    mode: 'ok',
    requests: 0,
    accepted: [],
    badSignatures: 0,
    ofType: (type) => receiver.accepted.filter((e) => e.type === type),
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      receiver.requests++;
      if (receiver.mode === 'hang') return;
      if (receiver.mode === '500') {
        res.writeHead(500).end('down');
        return;
      }
      const body = Buffer.concat(chunks).toString('utf8');
      if (!verify(secret, body, String(req.headers['mailgate-signature'] ?? ''))) {
        receiver.badSignatures++;
        res.writeHead(400).end('bad signature');
        return;
      }
      receiver.accepted.push(JSON.parse(body) as ReceivedEvent);
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  receiver.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks/mailgate`;
  return receiver;
}

export async function waitFor(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
