import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { SMTPServer, type SMTPServerAuthentication, type SMTPServerOptions, type SMTPServerSession } from 'smtp-server';

/**
 * A real SMTP server (nodemailer's smtp-server) for tests: collects what it receives and can be scripted
 * to fail at any step with a given reply, drop the connection, offer no STARTTLS, or use implicit TLS with a
 * self-signed certificate made by openssl at test time.
 */

const run = promisify(execFile);

export interface TestCert {
  key: string;
  cert: string;
}

let certPromise: Promise<TestCert> | undefined;

/** A self-signed EC certificate for 127.0.0.1 and localhost, made once per test process. */
export function testCertificate(): Promise<TestCert> {
  certPromise ??= (async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'mailgate-cert-'));
    try {
      const key = path.join(dir, 'key.pem');
      const cert = path.join(dir, 'cert.pem');
      await run('openssl', [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:prime256v1',
        '-nodes',
        '-days',
        '30',
        '-subj',
        '/CN=127.0.0.1',
        '-addext',
        'subjectAltName=IP:127.0.0.1,DNS:localhost',
        '-keyout',
        key,
        '-out',
        cert,
      ]);
      return { key: await readFile(key, 'utf8'), cert: await readFile(cert, 'utf8') };
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  })();
  return certPromise;
}

export interface Reply {
  code: number;
  message: string;
}

export interface ReceivedMessage {
  from: string;
  to: string[];
  raw: string;
  /** Header lines, unfolded, as received. */
  headers: string[];
  authUser: string | null;
  secure: boolean;
  /** The name the client gave in EHLO. */
  ehlo: string;
  /** A 'drop' cut every connection after this message's data arrived and before it was answered: the client never heard it was accepted. */
  replyLost: boolean;
}

export interface TestSmtpOptions {
  /** Implicit TLS (smtps). */
  secure?: boolean;
  /** Offer STARTTLS (default true; needs the certificate). false disables the command entirely. */
  starttls?: boolean;
  /** Require AUTH with these credentials (PLAIN and LOGIN). */
  auth?: { user: string; pass: string };
  /** SASL mechanisms offered (default PLAIN, LOGIN, XOAUTH2). */
  authMethods?: string[];
  /** Accept AUTH before TLS (plaintext): only for loopback tests of that policy. */
  allowInsecureAuth?: boolean;
  /** Access tokens accepted for XOAUTH2 (username → token). */
  tokens?: Map<string, string>;
  /** Scripted replies; return undefined to accept. */
  onAuth?: () => Reply | undefined;
  onMailFrom?: (address: string) => Reply | undefined;
  onRcptTo?: (address: string) => Reply | undefined;
  onData?: (message: ReceivedMessage) => Reply | 'drop' | undefined;
  /** Awaited after the data ends, before anything answers it: a test holds the answer until it has looked. */
  beforeDataReply?: () => Promise<void>;
  /** Wait this long before answering the data (a slow server). */
  dataDelayMs?: number;
  /** Called when a connection opens; a reply rejects it (e.g. 421). */
  onConnect?: () => Reply | undefined;
  /** Wait this long before the greeting (a slow server). */
  greetingDelayMs?: number;
}

export interface TestSmtp {
  host: string;
  port: number;
  /** PEM to trust (the transport's tlsCa). */
  ca: string;
  messages: ReceivedMessage[];
  connections: number;
  authAttempts: { method: string; user: string | undefined }[];
  close(): Promise<void>;
  /** Resolves when `count` messages have arrived. */
  waitFor(count: number, timeoutMs?: number): Promise<void>;
}

function replyError(r: Reply): Error {
  return Object.assign(new Error(r.message), { responseCode: r.code });
}

export function parseHeaders(raw: string): string[] {
  const head = raw.split(/\r?\n\r?\n/, 1)[0] ?? '';
  const lines: string[] = [];
  for (const line of head.split(/\r?\n/)) {
    if (/^[ \t]/.test(line) && lines.length) lines[lines.length - 1] += ` ${line.trim()}`;
    else if (line) lines.push(line);
  }
  return lines;
}

export async function startTestSmtp(options: TestSmtpOptions = {}): Promise<TestSmtp> {
  const { key, cert } = await testCertificate();
  const messages: ReceivedMessage[] = [];
  const authAttempts: TestSmtp['authAttempts'] = [];
  const waiters: { count: number; resolve: () => void }[] = [];
  let connections = 0;
  /** Times a 'drop' cut every connection. */
  let cuts = 0;
  /** A cut is scheduled and has not destroyed the connections yet. */
  let cutPending = false;
  const starttls = options.starttls ?? true;
  const serverOptions: SMTPServerOptions = {
    secure: options.secure ?? false,
    key,
    cert,
    logger: false,
    disableReverseLookup: true,
    authOptional: !options.auth && !options.tokens,
    authMethods: options.authMethods ?? ['PLAIN', 'LOGIN', 'XOAUTH2'],
    allowInsecureAuth: options.allowInsecureAuth ?? false,
    disabledCommands: [
      ...(starttls || options.secure ? [] : ['STARTTLS']),
      ...(options.auth || options.tokens ? [] : ['AUTH']),
    ],
    size: 10 * 1024 * 1024,
    onConnect(_session, cb) {
      connections++;
      const r = options.onConnect?.();
      if (options.greetingDelayMs) setTimeout(() => cb(r ? replyError(r) : null), options.greetingDelayMs);
      else cb(r ? replyError(r) : null);
    },
    onAuth(auth: SMTPServerAuthentication, _session: SMTPServerSession, cb) {
      authAttempts.push({ method: auth.method, user: auth.username });
      const scripted = options.onAuth?.();
      if (scripted) return cb(replyError(scripted));
      if (auth.method === 'XOAUTH2') {
        if (options.tokens?.get(auth.username ?? '') === auth.accessToken) return cb(null, { user: auth.username });
        return cb(null, { data: { status: '401', schemes: 'bearer', scope: 'https://mail.google.com/' } });
      }
      if (options.auth && auth.username === options.auth.user && auth.password === options.auth.pass)
        return cb(null, { user: auth.username });
      return cb(Object.assign(new Error('Authentication credentials invalid'), { responseCode: 535 }));
    },
    onMailFrom(address, _session, cb) {
      const r = options.onMailFrom?.(address.address);
      cb(r ? replyError(r) : null);
    },
    onRcptTo(address, _session, cb) {
      const r = options.onRcptTo?.(address.address);
      cb(r ? replyError(r) : null);
    },
    onData(stream, session, cb) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', async () => {
        if (options.beforeDataReply) await options.beforeDataReply();
        const raw = Buffer.concat(chunks).toString('utf8');
        const message: ReceivedMessage = {
          from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
          to: session.envelope.rcptTo.map((r) => r.address),
          raw,
          headers: parseHeaders(raw),
          authUser: (session.user as string | undefined) ?? null,
          secure: session.secure,
          ehlo: String(session.hostNameAppearsAs ?? ''),
          replyLost: false,
        };
        // A cut already scheduled when the data ended also takes this message's connection.
        const cutsBefore = cutPending ? cuts - 1 : cuts;
        const r = options.onData?.(message);
        if (r === 'drop') {
          // Simulates a crash or network cut after the data, before the server answers.
          cuts++;
          cutPending = true;
          setImmediate(() => {
            cutPending = false;
            socketsOf(server).forEach((s) => s.destroy());
          });
          return;
        }
        if (r) return cb(replyError(r));
        const accept = () => {
          message.replyLost = cuts !== cutsBefore;
          messages.push(message);
          for (const w of [...waiters])
            if (messages.length >= w.count) {
              waiters.splice(waiters.indexOf(w), 1);
              w.resolve();
            }
          cb(null, `Ok: queued as ${messages.length}`);
        };
        if (options.dataDelayMs) setTimeout(accept, options.dataDelayMs);
        else accept();
      });
    },
  };
  const server = new SMTPServer(serverOptions);
  server.on('error', () => undefined);
  const sockets = new Set<net.Socket>();
  const netServer = (server as unknown as { server: net.Server }).server;
  netServer.on('connection', (s: net.Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  socketRegistry.set(server, sockets);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = netServer.address() as net.AddressInfo;
  return {
    host: '127.0.0.1',
    port,
    ca: cert,
    messages,
    get connections() {
      return connections;
    },
    authAttempts,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
    waitFor(count, timeoutMs = 20_000) {
      if (messages.length >= count) return Promise.resolve();
      return new Promise<void>((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`only ${messages.length} of ${count} messages arrived within ${timeoutMs} ms`)),
          timeoutMs,
        );
        waiters.push({
          count,
          resolve: () => {
            clearTimeout(timer);
            resolve();
          },
        });
      });
    },
  };
}

const socketRegistry = new WeakMap<SMTPServer, Set<net.Socket>>();
function socketsOf(server: SMTPServer): net.Socket[] {
  return [...(socketRegistry.get(server) ?? [])];
}

/** A TCP server that accepts connections and never says a word (a wrong port, a black hole). */
export async function startSilentServer(): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on('error', () => undefined);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** A port on which nothing listens (taken and released). */
export async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
