import net, { type AddressInfo } from 'node:net';
import { SMTPServer, type SMTPServerDataStream, type SMTPServerSession } from 'smtp-server';
import type { ApiKeyService } from '../admin/api-keys.js';
import { fromAllowed, type KeyPolicy, type KeyRateLimits } from '../admin/key-policy.js';
import type { AuditRecorder } from '../admin/types.js';
import { findAppError } from '../errors.js';
import type { Logger } from '../log.js';
import { addressProblem } from '../mail/compose.js';
import type { MailQueue } from '../mail/queue.js';
import type { SmtpServers } from '../mail/servers.js';
import type { SubmissionAuthGuard } from './auth-guard.js';
import { acceptMessage } from './accept.js';
import { MAX_RECIPIENTS_PER_MESSAGE, replies, SmtpReply } from './replies.js';

/**
 * The SMTP submission front: apps that only speak SMTP AUTH send through mailgate with an API key (scope `send`)
 * as the password. smtp-server runs the protocol (PIPELINING, SIZE, 8BITMIME, SMTPUTF8, STARTTLS, implicit TLS);
 * this file decides who may do what, and answers with the codes of replies.ts:
 *   AUTH       only over TLS, except from loopback; wrong keys slow the address (auth-guard.ts)
 *   MAIL FROM  the key is read again (a key revoked on any instance is refused from the next transaction on), and
 *              its rateLimitPerMinute counted; the envelope sender itself is not used upstream
 *   RCPT TO    at most MAX_RECIPIENTS_PER_MESSAGE, ASCII addresses mailgate can deliver to
 *   DATA       read, checked and stored by accept.ts; 250 only once the store has it
 * Stopping: no new connections, commands after that get 421, a message being received is still stored and
 * answered, then the remaining connections are told 421 and closed.
 */

export interface SubmissionUser {
  keyId: string;
  keyName: string;
  /** The user name the app logged in with: free text, shown in the audit log. */
  username: string;
  policy: KeyPolicy | undefined;
}

export interface SubmissionDeps {
  host: string;
  port: number;
  implicitTls: boolean;
  maxMessageBytes: number;
  tls: { key: string; cert: string };
  apiKeys: Pick<ApiKeyService, 'authenticate' | 'get'>;
  keyRates: Pick<KeyRateLimits, 'consume'>;
  guard: SubmissionAuthGuard;
  audit: AuditRecorder;
  servers: Pick<SmtpServers, 'resolve' | 'defaultServerId'>;
  queue: Pick<MailQueue, 'enqueueMime'>;
  log: Logger;
  /** How long stop() waits for messages being received before closing every connection. Default 20 s. */
  drainMs?: number;
}

export interface SubmissionListener {
  /** The port it listens on (the real one when configured as 0). */
  readonly port: number;
  stop(): Promise<void>;
}

function plainAddress(ip: string): string {
  return ip.startsWith('::ffff:') ? ip.slice(7) : ip;
}

function isLoopback(ip: string): boolean {
  const a = plainAddress(ip);
  return a === '::1' || (net.isIPv4(a) && a.startsWith('127.'));
}

/** An error for a handler callback: our replies as they are, anything else logged and answered 451. */
function asReply(err: unknown, log: Logger, what: string): SmtpReply {
  if (err instanceof SmtpReply) return err;
  const limited = findAppError(err, 'rate_limited');
  if (limited) return replies.rateLimited(limited.message);
  if (findAppError(err, 'queue_full')) return replies.queueFull();
  log.error({ err }, `submission: ${what} failed`);
  return replies.temporary();
}

export async function startSubmissionListener(deps: SubmissionDeps): Promise<SubmissionListener> {
  const { log } = deps;
  const inFlight = new Set<Promise<unknown>>();
  let stopping = false;

  const userOf = (session: SMTPServerSession) => session.user as SubmissionUser;
  /**
   * The TLS socket of each session. A client that pipelines MAIL, RCPT and DATA gets their three replies in one
   * TLS record and one write: smtp-server writes each reply on its own, and they left in two or three records,
   * each costing both sides a system call and the client a wake-up.
   */
  const tlsSockets = new WeakMap<SMTPServerSession, { cork(): void; uncork(): void }>();

  async function authenticate(username: string, password: string, session: SMTPServerSession) {
    const ip = plainAddress(session.remoteAddress);
    if (!session.secure && !isLoopback(ip)) throw replies.encryptionRequired();
    const turn = await deps.guard.turn(ip);
    if (!turn.ok) throw replies.slowDown(turn.retryAfterSec);
    const key = await deps.apiKeys.authenticate(password.trim());
    if (!key || !key.scopes.includes('send')) {
      await deps.guard.failed(ip);
      await deps.audit.record({
        actor: { type: 'system', id: 'smtp-submission' },
        action: 'submission.login',
        outcome: 'failure',
        ip,
        detail: { username: username.slice(0, 200) },
      });
      throw replies.badKey();
    }
    await deps.guard.succeeded(ip);
    const user: SubmissionUser = {
      keyId: key.id,
      keyName: key.name,
      username: username.slice(0, 200),
      policy: key.policy,
    };
    await deps.audit.record({
      actor: { type: 'api_key', id: key.id, name: key.name, scopes: key.scopes },
      action: 'submission.login',
      target: `api_key:${key.id}`,
      outcome: 'success',
      ip,
      detail: { username: user.username, tls: session.secure },
    });
    return user;
  }

  /** The key read again for every transaction: revocation and policy changes apply on every instance at once. */
  async function startTransaction(session: SMTPServerSession): Promise<void> {
    const user = userOf(session);
    const key = await deps.apiKeys.get(user.keyId);
    if (!key || key.status === 'revoked' || key.status === 'expired') throw replies.keyRevoked();
    user.policy = key.policy;
    await deps.keyRates.consume(user.keyId, key.policy);
  }

  async function receive(stream: SMTPServerDataStream, session: SMTPServerSession): Promise<string> {
    const user = userOf(session);
    const serverId = user.policy?.serverId ?? (await deps.servers.defaultServerId());
    return acceptMessage(stream, {
      session,
      user,
      maxMessageBytes: deps.maxMessageBytes,
      server: serverId ? await deps.servers.resolve(serverId) : null,
      fromAllowed: (address) => fromAllowed(user.policy, address),
      enqueue: deps.queue.enqueueMime,
    });
  }

  const server = new SMTPServer({
    secure: deps.implicitTls,
    key: deps.tls.key,
    cert: deps.tls.cert,
    minVersion: 'TLSv1.2',
    name: deps.host === '0.0.0.0' || deps.host === '::' ? undefined : deps.host,
    banner: 'mailgate submission: AUTH with an API key as the password',
    logger: false,
    disableReverseLookup: true,
    size: deps.maxMessageBytes,
    authMethods: ['PLAIN', 'LOGIN'],
    // AUTH is offered before TLS so loopback clients can use it; authenticate() refuses everyone else with 538.
    allowInsecureAuth: true,
    hideENHANCEDSTATUSCODES: true,
    onAuth(auth, session, callback) {
      authenticate(auth.username ?? '', auth.password ?? '', session).then(
        (user) => callback(null, { user }),
        (err: unknown) => callback(asReply(err, log, 'AUTH')),
      );
    },
    onSecure(socket, session, callback) {
      tlsSockets.set(session, socket);
      callback();
    },
    onMailFrom(_address, session, callback) {
      // The RCPT and DATA pipelined behind this MAIL are answered within callback() (onRcptTo is synchronous,
      // onData answers 354 at once), so their replies are written together at uncork().
      const answer = (err?: SmtpReply) => {
        const socket = tlsSockets.get(session);
        socket?.cork();
        try {
          callback(err);
        } finally {
          socket?.uncork();
        }
      };
      startTransaction(session).then(
        () => answer(),
        (err: unknown) => answer(asReply(err, log, 'MAIL FROM')),
      );
    },
    onRcptTo(address, session, callback) {
      if (session.envelope.rcptTo.length >= MAX_RECIPIENTS_PER_MESSAGE) return callback(replies.tooManyRecipients());
      const problem = addressProblem(address.address);
      callback(problem ? replies.badRecipient(problem) : undefined);
    },
    onData(stream, session, callback) {
      const work = receive(stream, session).then(
        (reply) => callback(null, reply),
        (err: unknown) => {
          // The rest of the message must still be read before the answer (smtp-server waits for its end).
          stream.resume();
          callback(asReply(err, log, 'DATA'));
        },
      );
      inFlight.add(work);
      void work.finally(() => inFlight.delete(work));
    },
  });
  server.on('error', (err) => log.warn({ err }, 'submission: connection error'));
  await new Promise<void>((resolve, reject) => {
    server.server.once('error', reject);
    server.listen(deps.port, deps.host, () => {
      server.server.off('error', reject);
      resolve();
    });
  });
  const port = (server.server.address() as AddressInfo).port;

  return {
    port,
    async stop() {
      if (stopping) return;
      stopping = true;
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      // Messages being received are stored and answered; the deadline bounds a client that stalls mid-DATA.
      await Promise.race([
        Promise.allSettled([...inFlight]),
        new Promise((resolve) => setTimeout(resolve, deps.drainMs ?? 20_000).unref()),
      ]);
      const connections = (
        server as unknown as { connections: Set<{ send(c: number, t: string): void; close(): void }> }
      ).connections;
      for (const c of connections) {
        c.send(421, '4.3.2 mailgate is shutting down; try again later');
        c.close();
      }
      await closed;
    },
  };
}
