import { Socket } from 'node:net';
import nodemailer, { type Transporter } from 'nodemailer';
import { startTestApp, type TestApp, type TestAppOptions } from './app.js';
import { startOAuthSmtp, type OAuthSmtp } from './oauth-flow.js';
import { authorizeThroughServices, createOAuthServer, providerEnv } from './oauth-setup.js';
import { startFakeProvider, type FakeProvider } from './oidc-provider.js';

/**
 * A mailgate with its SMTP submission front on a random port, delivering over XOAUTH2 (a token from the local
 * OpenID provider) to an SMTP sink that checks every token by introspection: the whole path an app's mail takes.
 */
export interface SubmissionRig {
  app: TestApp;
  provider: FakeProvider;
  sink: OAuthSmtp;
  serverId: string;
  port: number;
  /** An API key with scope `send` (and an optional policy). */
  key(policy?: { serverId?: string; allowedFrom?: string[]; rateLimitPerMinute?: number }): Promise<string>;
  /** A nodemailer client over STARTTLS that accepts the generated certificate. */
  client(pass: string, user?: string): Transporter;
  /** Number of messages in the store. */
  storedCount(): Promise<number>;
  close(): Promise<void>;
}

export async function startSubmissionRig(
  options: { store?: TestAppOptions['store']; env?: Record<string, string>; shareWith?: TestApp } = {},
): Promise<SubmissionRig> {
  const provider = await startFakeProvider({ kind: 'google', accessTokenTtlSec: 3600 });
  const sink = await startOAuthSmtp(provider);
  const app = await startTestApp({
    ...(options.store ? { store: options.store } : {}),
    workers: true,
    env: { ...providerEnv(provider), MAILGATE_SUBMISSION_PORT: '0', ...options.env },
  });
  const { serverId } = await createOAuthServer(app.services, provider, sink.port);
  await authorizeThroughServices(app.services, serverId);
  const port = (await app.services.submission.start())!;
  return {
    app,
    provider,
    sink,
    serverId,
    port,
    async key(policy) {
      const created = await app.services.apiKeys.create({
        name: 'smtp app',
        scopes: ['send'],
        actor: { type: 'system', id: 'test' },
        ...(policy ? { policy } : {}),
      });
      return created.key;
    },
    client(pass, user = 'tracker') {
      return nodemailer.createTransport({
        host: '127.0.0.1',
        port,
        secure: false,
        requireTLS: true,
        tls: { rejectUnauthorized: false },
        auth: { user, pass },
      });
    },
    async storedCount() {
      return (await app.store.list('messages')).length;
    },
    async close() {
      await app.close();
      await sink.close();
      await provider.close();
    },
  };
}

/** A raw SMTP conversation: send lines, read the replies (multi-line replies joined). */
export class RawSmtp {
  readonly #socket: Socket;
  #buffer = '';
  #waiters: Array<() => void> = [];
  closed = false;

  private constructor(socket: Socket) {
    this.#socket = socket;
    socket.setEncoding('latin1');
    socket.on('data', (d: string) => {
      this.#buffer += d;
      for (const w of this.#waiters.splice(0)) w();
    });
    socket.on('close', () => {
      this.closed = true;
      for (const w of this.#waiters.splice(0)) w();
    });
    socket.on('error', () => {});
  }

  static async connect(port: number, options: { host?: string; localAddress?: string } = {}): Promise<RawSmtp> {
    const socket = new Socket();
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      const { host = '127.0.0.1', localAddress } = options;
      socket.connect({ port, host, ...(localAddress ? { localAddress } : {}) }, resolve);
    });
    const c = new RawSmtp(socket);
    await c.reply();
    return c;
  }

  /** The next complete reply (`250-…\r\n250 …\r\n`), or '' when the connection closed first. */
  async reply(timeoutMs = 15_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const m = /^((?:\d{3}-[^\r\n]*\r\n)*\d{3}(?: [^\r\n]*)?\r\n)/.exec(this.#buffer);
      if (m) {
        this.#buffer = this.#buffer.slice(m[1]!.length);
        return m[1]!;
      }
      if (this.closed) return '';
      if (Date.now() > deadline) throw new Error(`no SMTP reply; buffer: ${this.#buffer.slice(0, 200)}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, 200);
        this.#waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  write(data: string | Buffer): Promise<void> {
    return new Promise((resolve, reject) => this.#socket.write(data, (err) => (err ? reject(err) : resolve())));
  }

  async command(line: string): Promise<string> {
    await this.write(`${line}\r\n`);
    return this.reply();
  }

  /** EHLO + AUTH PLAIN (loopback, no TLS); returns the AUTH reply. */
  async login(key: string, user = 'raw'): Promise<string> {
    await this.command('EHLO test.example');
    return this.command(`AUTH PLAIN ${Buffer.from(`\0${user}\0${key}`).toString('base64')}`);
  }

  /** The socket, handed over (for STARTTLS by the caller): this object stops reading it. */
  socket(): Socket {
    this.#socket.removeAllListeners('data');
    return this.#socket;
  }

  destroy(): void {
    this.#socket.destroy();
  }
}

/** The decoded bytes of the base64 part whose headers name `filename`. */
export function attachmentOf(raw: string, filename: string): Buffer {
  const at =
    raw.indexOf(`filename=${filename}`) >= 0
      ? raw.indexOf(`filename=${filename}`)
      : raw.indexOf(`filename="${filename}"`);
  if (at < 0) throw new Error(`no part named ${filename}`);
  const start = raw.indexOf('\r\n\r\n', at) + 4;
  const end = raw.indexOf('\r\n--', start);
  return Buffer.from(raw.slice(start, end).replace(/\s+/g, ''), 'base64');
}

/** The header block of a raw message. */
export function headerBlock(raw: string): string {
  const end = raw.indexOf('\r\n\r\n');
  return end < 0 ? raw : raw.slice(0, end);
}
