import net, { type Socket } from 'node:net';
import os from 'node:os';
import tls, { type ConnectionOptions } from 'node:tls';
import { connectChecked, toConnectFailure, type EgressGuard } from '../../net/connect.js';
import { WireConnection } from './connection.js';
import { smtpError, timeoutError } from './errors.js';
import type { Reply } from './replies.js';

/**
 * Opens a session the way nodemailer's SMTPConnection sets one up from the same transport options: TCP (through
 * the egress policy when there is one), implicit TLS for smtps, greeting, EHLO, STARTTLS when offered (or
 * required: then a refusal fails hard), EHLO again, AUTH. A server this client does not handle (no PIPELINING, no
 * EHLO, only CRAM-MD5) is reported as NotHandled, and the transport gives it to nodemailer.
 */

export type WireAuth =
  | { type: 'none' }
  | { type: 'basic'; user: string; pass: string }
  /** `token(force)`: an access token; force asks for a fresh one after the server rejected the first. */
  | { type: 'xoauth2'; user: string; token: (force: boolean) => Promise<string> };

export interface SessionOptions {
  host: string;
  port: number;
  secure: boolean;
  requireTLS: boolean;
  /** EHLO name; nodemailer's default (the machine's FQDN or [127.0.0.1]) when absent. */
  name?: string | undefined;
  /** Each wait; 0 for none. */
  timeoutMs: number;
  tls: ConnectionOptions;
  auth: WireAuth;
  egress?: EgressGuard | undefined;
}

export class NotHandled extends Error {}

const FOREVER_MS = 2_147_483_647;

/** nodemailer's default EHLO name. */
export function defaultClientName(): string {
  let name: string;
  try {
    name = os.hostname() || '';
  } catch {
    name = 'localhost';
  }
  if (!name || !name.includes('.')) name = '[127.0.0.1]';
  if (/^\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(name)) name = `[${name}]`;
  return name;
}

function plainConnect(host: string, port: number, timeoutMs: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(timeoutError('Connection timeout', 'CONNECT_TIMEOUT'));
    }, timeoutMs);
    let connected = false;
    socket.once('connect', () => {
      connected = true;
      clearTimeout(timer);
      resolve(socket);
    });
    socket.on('error', (err) => {
      if (connected) return;
      clearTimeout(timer);
      socket.destroy();
      reject(smtpError(err, 'ESOCKET', false, 'CONN'));
    });
  });
}

function upgrade(socket: Socket, options: SessionOptions, timeoutMs: number, command: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const host = options.host.replace(/^\[|\]$/g, '');
    const secured = tls.connect({
      ...options.tls,
      socket,
      host,
      ...(net.isIP(host) === 0 ? { servername: host } : {}),
    });
    const timer = setTimeout(() => {
      secured.destroy();
      reject(timeoutError('TLS handshake timed out', 'UPGRADE_TIMEOUT', command));
    }, timeoutMs);
    // A failed handshake (an untrusted certificate…) is a socket error to nodemailer, whatever the step.
    const onError = (err: Error) => {
      clearTimeout(timer);
      secured.destroy();
      reject(smtpError(err, 'ESOCKET', false, 'CONN'));
    };
    secured.once('error', onError);
    secured.once('secureConnect', () => {
      clearTimeout(timer);
      secured.removeListener('error', onError);
      resolve(secured);
    });
  });
}

const isPositive = (reply: Reply) => reply.code >= 200 && reply.code < 300;

function readExtensions(conn: WireConnection, reply: Reply): { auth: string[]; allowsAuth: boolean } {
  const lines = reply.text
    .split('\n')
    .map((line) => line.replace(/^\d+[ -]/, '').trim())
    .filter(Boolean)
    .slice(1);
  conn.extensions = new Set(lines.map((line) => line.split(/[\s=]/, 1)[0]!.toUpperCase()));
  const mechanisms = new Set<string>();
  for (const line of lines) {
    const auth = /^AUTH[\s=](.*)/i.exec(line);
    if (auth) for (const m of auth[1]!.split(/[\s=]+/)) mechanisms.add(m.toUpperCase());
  }
  return {
    auth: ['PLAIN', 'LOGIN', 'CRAM-MD5', 'XOAUTH2'].filter((m) => mechanisms.has(m)),
    allowsAuth: /[ -]AUTH\b/i.test(reply.text),
  };
}

async function ehlo(conn: WireConnection, options: SessionOptions, name: string): Promise<Reply> {
  const reply = await conn.request(`EHLO ${name}`);
  if (reply.code === 421)
    throw smtpError(`Server terminates connection. response=${reply.text}`, 'ECONNECTION', reply.text, 'EHLO');
  if (!isPositive(reply)) {
    if (options.requireTLS)
      throw smtpError(
        `EHLO failed but HELO does not support required STARTTLS. response=${reply.text}`,
        'ECONNECTION',
        reply.text,
        'EHLO',
      );
    throw new NotHandled('the server does not speak ESMTP');
  }
  return reply;
}

/** After a 334 challenge the client answers with an empty line until the server decides (nodemailer's _actionAUTHComplete). */
async function authOutcome(conn: WireConnection, reply: Reply, method: string): Promise<void> {
  let r = reply;
  while (r.code === 334) r = await conn.request('');
  if (!isPositive(r)) throw smtpError('Invalid login', 'EAUTH', r.text, `AUTH ${method}`);
}

const b64 = (text: string) => Buffer.from(text, 'utf8').toString('base64');

async function authenticate(conn: WireConnection, auth: WireAuth, offered: string[]): Promise<void> {
  if (auth.type === 'none') return;
  if (auth.type === 'xoauth2') {
    const attempt = async (force: boolean): Promise<Reply> =>
      conn.request(`AUTH XOAUTH2 ${b64(`user=${auth.user}\x01auth=Bearer ${await auth.token(force)}\x01\x01`)}`);
    let reply = await attempt(false);
    if (reply.code === 334) {
      // The server's error challenge: answered with an empty line, then once more with a fresh token.
      await conn.request('');
      reply = await attempt(true);
    }
    return authOutcome(conn, reply, 'XOAUTH2');
  }
  const method = offered.find((m) => m !== 'XOAUTH2') ?? 'PLAIN';
  if (method === 'PLAIN') {
    return authOutcome(conn, await conn.request(`AUTH PLAIN ${b64(`\u0000${auth.user}\u0000${auth.pass}`)}`), 'PLAIN');
  }
  if (method !== 'LOGIN') throw new NotHandled(`AUTH ${method} is left to nodemailer`);
  const user = await conn.request('AUTH LOGIN');
  if (!/^334[ -]/.test(user.text))
    throw smtpError('Invalid login sequence while waiting for "334 VXNlcm5hbWU6"', 'EAUTH', user.text, 'AUTH LOGIN');
  const pass = await conn.request(b64(auth.user));
  if (!/^334[ -]/.test(pass.text))
    throw smtpError('Invalid login sequence while waiting for "334 UGFzc3dvcmQ6"', 'EAUTH', pass.text, 'AUTH LOGIN');
  return authOutcome(conn, await conn.request(b64(auth.pass)), 'LOGIN');
}

/** A ready session (greeted, secured as required, authenticated), or a rejection in nodemailer's shape. */
export async function openSession(options: SessionOptions): Promise<WireConnection> {
  const wait = options.timeoutMs > 0 ? options.timeoutMs : FOREVER_MS;
  let socket = options.egress
    ? await connectChecked(options.egress, { host: options.host, port: options.port, timeoutMs: wait }).catch(
        (err: unknown) => {
          throw toConnectFailure(err);
        },
      )
    : await plainConnect(options.host.replace(/^\[|\]$/g, ''), options.port, wait);
  socket.setNoDelay(true);
  socket.setKeepAlive(true, 30_000);
  if (options.secure) {
    try {
      socket = await upgrade(socket, options, wait, 'CONN');
    } catch (err) {
      socket.destroy();
      throw err;
    }
  }
  const conn = new WireConnection(socket);
  try {
    // Armed before the greeting timer, as nodemailer does: a silent server is reported as a socket timeout.
    conn.setTimeout(options.timeoutMs);
    const greetingTimer = setTimeout(
      () => conn.fail(timeoutError('Greeting never received', 'GREETING_TIMEOUT')),
      wait,
    );
    const greeting = await conn.request().finally(() => clearTimeout(greetingTimer));
    if (greeting.code !== 220)
      throw smtpError(`Invalid greeting. response=${greeting.text}`, 'EPROTOCOL', greeting.text, 'CONN');
    const name = (options.name || defaultClientName()).replace(/[\r\n]+/g, '');
    let hello = await ehlo(conn, options, name);
    if (!options.secure && (/[ -]STARTTLS\b/im.test(hello.text) || options.requireTLS)) {
      const go = await conn.request('STARTTLS');
      if (!isPositive(go)) throw smtpError('Error upgrading connection with STARTTLS', 'ETLS', go.text, 'STARTTLS');
      conn.finishUpgrade(await upgrade(conn.beginUpgrade(), options, wait, 'STARTTLS'));
      conn.setTimeout(options.timeoutMs);
      hello = await ehlo(conn, options, name);
    }
    const { auth, allowsAuth } = readExtensions(conn, hello);
    if (!conn.extensions.has('PIPELINING')) throw new NotHandled('the server does not offer PIPELINING');
    if (allowsAuth) await authenticate(conn, options.auth, auth);
    // A server can close right behind its last setup reply (a 421 in the same packet): the pool only hears of a
    // session's end after it took the session, so a closed one would hold its place and its message forever.
    if (conn.closed) throw smtpError('Connection closed unexpectedly', 'ECONNECTION', false, 'CONN');
    return conn;
  } catch (err) {
    if (err instanceof NotHandled) conn.quit();
    else conn.close();
    throw err;
  }
}
