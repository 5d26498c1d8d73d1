import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { FakeProvider } from './oidc-provider.js';

/**
 * The shared core of the Graph and Gmail API fakes: a small HTTP server that validates every bearer token at the
 * local OpenID provider by RFC 7662 introspection (active, the mailbox's own token, the send scope), keeps the
 * MIME messages it accepted, and answers with injected faults (429 with Retry-After, 5xx, 413, 401, a provider
 * error code) in order. It also records how many requests ran at once per mailbox.
 */

export interface Fault {
  status: number;
  /** Retry-After, in seconds. */
  retryAfterSec?: number;
  /** The provider's error code (Graph `error.code`, Gmail `errors[0].reason`). */
  code?: string;
}

export interface ReceivedMessage {
  mailbox: string;
  mime: string;
  at: number;
  /** Sent with an app-only token (the application's, not the mailbox's). */
  appOnly?: boolean;
}

export interface MailApiFake {
  url: string;
  messages: ReceivedMessage[];
  /** Every send request, answered or not, with its HTTP status. */
  requests: { mailbox: string; status: number; appOnly?: boolean }[];
  /** The most requests seen running at once, per mailbox. */
  maxConcurrent: Map<string, number>;
  /** Answers the next requests with these faults, one each, before accepting again. */
  inject(...faults: Fault[]): void;
  /** Answers every send (of `mailbox` only, when given) with this fault until cleared (null). */
  storm(fault: Fault | null, mailbox?: string): void;
  /** Each send waits this long before answering (concurrency becomes visible). */
  delayMs: number;
  /** From addresses a mailbox may send as, besides itself; others get the provider's send-as refusal. */
  sendAs: Map<string, string[]>;
  waitFor(count: number, timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

export interface MailApiShape {
  sendPath: RegExp;
  profilePath: RegExp;
  sendScope: string;
  readScopes: string[];
  /**
   * An app-only token (client credentials: no user, the subject is the application) with this scope may send
   * as any mailbox, as Graph's Mail.Send application permission does.
   */
  appOnlyScope?: string;
  /** The MIME in a request body. */
  mimeOf(body: string): string;
  okSend(): { status: number; body: string };
  profile(mailbox: string): unknown;
  error(fault: Fault, message: string): unknown;
  sendAsCode: string;
  /** Listen on this port (0 or absent: any free one). */
  port?: number;
}

const fromOf = (mime: string) => /^From:.*?<([^>]+)>/im.exec(mime)?.[1] ?? /^From:\s*(\S+@\S+)/im.exec(mime)?.[1] ?? '';

export async function startMailApiFake(provider: FakeProvider, shape: MailApiShape): Promise<MailApiFake> {
  const queue: Fault[] = [];
  let storming: Fault | null = null;
  let stormMailbox: string | undefined;
  const running = new Map<string, number>();

  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => void handle(req, res, Buffer.concat(chunks).toString('utf8')));
  });

  function answer(res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) {
    res.writeHead(status, { 'content-type': 'application/json', ...headers });
    res.end(body === undefined ? '' : JSON.stringify(body));
  }

  function fail(res: http.ServerResponse, fault: Fault, message: string) {
    answer(
      res,
      fault.status,
      shape.error(fault, message),
      fault.retryAfterSec !== undefined ? { 'retry-after': String(fault.retryAfterSec) } : {},
    );
  }

  async function handle(req: http.IncomingMessage, res: http.ServerResponse, body: string) {
    const path = (req.url ?? '').split('?')[0]!;
    const send = req.method === 'POST' ? shape.sendPath.exec(path) : null;
    const profile = req.method === 'GET' ? shape.profilePath.exec(path) : null;
    const match = send ?? profile;
    if (!match) return answer(res, 404, shape.error({ status: 404, code: 'NotFound' }, 'no such resource'));
    const mailbox = decodeURIComponent(match[1]!);
    const token = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1] ?? '';
    const info = await provider.introspect(token);
    const scopes = (info.scope ?? '').split(' ');
    const appOnly =
      shape.appOnlyScope !== undefined &&
      scopes.includes(shape.appOnlyScope) &&
      (info.sub === undefined || info.sub === info.client_id);
    if (!info.active || (info.sub !== mailbox && !appOnly)) {
      if (send) fake.requests.push({ mailbox, status: 401 });
      return answer(res, 401, shape.error({ status: 401, code: 'InvalidAuthenticationToken' }, 'token not valid'));
    }
    if (profile) {
      if (!shape.readScopes.some((s) => scopes.includes(s)))
        return answer(res, 403, shape.error({ status: 403, code: 'ErrorAccessDenied' }, 'insufficient privileges'));
      return answer(res, 200, shape.profile(mailbox));
    }
    if (!scopes.includes(shape.sendScope) && !appOnly) {
      fake.requests.push({ mailbox, status: 401 });
      return answer(res, 401, shape.error({ status: 401, code: 'InvalidAuthenticationToken' }, 'scope missing'));
    }
    const key = mailbox.toLowerCase();
    running.set(key, (running.get(key) ?? 0) + 1);
    fake.maxConcurrent.set(key, Math.max(fake.maxConcurrent.get(key) ?? 0, running.get(key)!));
    try {
      if (fake.delayMs > 0) await new Promise((r) => setTimeout(r, fake.delayMs));
      const fault = queue.shift() ?? (stormMailbox === undefined || stormMailbox === key ? storming : null);
      if (fault) {
        fake.requests.push({ mailbox, status: fault.status });
        return fail(res, fault, `injected ${fault.status}`);
      }
      const mime = shape.mimeOf(body);
      const from = fromOf(mime).toLowerCase();
      if (from && from !== key && !(fake.sendAs.get(key) ?? []).map((a) => a.toLowerCase()).includes(from)) {
        fake.requests.push({ mailbox, status: 403 });
        return fail(res, { status: 403, code: shape.sendAsCode }, `${mailbox} may not send as ${from}`);
      }
      fake.messages.push({ mailbox, mime, at: Date.now(), appOnly });
      fake.requests.push({ mailbox, status: 202, appOnly });
      const ok = shape.okSend();
      res.writeHead(ok.status, ok.body ? { 'content-type': 'application/json' } : {});
      res.end(ok.body);
    } finally {
      running.set(key, running.get(key)! - 1);
    }
  }

  await new Promise<void>((resolve) => server.listen(shape.port ?? 0, '127.0.0.1', resolve));
  const fake: MailApiFake = {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    messages: [],
    requests: [],
    maxConcurrent: new Map(),
    delayMs: 0,
    sendAs: new Map(),
    inject: (...faults) => void queue.push(...faults),
    storm(fault, mailbox) {
      storming = fault;
      stormMailbox = mailbox?.toLowerCase();
    },
    async waitFor(count, timeoutMs = 20_000) {
      const deadline = Date.now() + timeoutMs;
      while (fake.messages.length < count) {
        if (Date.now() > deadline) throw new Error(`expected ${count} messages, got ${fake.messages.length}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  return fake;
}
