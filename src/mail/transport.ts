import type { Socket } from 'node:net';
import { format } from 'node:util';
import nodemailer from 'nodemailer';
import type { Logger } from '../log.js';
import { connectChecked, toConnectFailure, type EgressGuard } from '../net/connect.js';
import { type AccessTokenSource, type GrantSource, type SmtpAuth, isAuthProblem, pickSmtpAuth } from './auth.js';
import { coalesceChunks } from './coalesce.js';
import { toNodemailerMessage, type RawMessage } from './nodemailer-message.js';
import type { ComposedMessage } from './compose.js';
import { isLoopbackHost, type ResolvedServer } from './servers.js';
import { createWirePool, isHandedOver, type WirePool } from './smtp-wire/index.js';
import type { MailTransportFailure } from './transport-failure.js';
import { credentialsFailure, forLibrary, tokenProblemOf, toMailTransportFailure } from './transport-failure.js';

/**
 * The only importer of nodemailer, and where its failures become MailTransportFailure (transport-failure.ts). Builds transport options from a server (timeouts, TLS policy, EHLO name,
 * credentials), keeps one pooled transport per server, and rebuilds it when the server's settings change.
 *
 * TLS policy: `protocol: smtps` connects with implicit TLS; `tls` sets requireTLS, so a server that does not
 * offer STARTTLS (or a downgrade by a man in the middle) fails hard instead of continuing in plaintext.
 * With authentication, requireTLS is forced on even when `tls` is off, except for a loopback host: nodemailer
 * would otherwise send AUTH in plaintext to a server that does not offer STARTTLS.
 */

/** setTimeout's largest delay: nodemailer treats 0 as "use the default", so "wait forever" is this. */
const FOREVER_MS = 2_147_483_647;

/** The largest raw message the narrow client writes (dot-stuffed as one buffer); larger ones are streamed. */
const WIRE_MAX_BYTES = 1 << 20;

export interface TransportDeps {
  log: Logger;
  /** MAILGATE_MAIL_DEBUG: protocol-level lines to the (redacting) logger. */
  debug?: boolean;
  /** Extra trusted CA certificates (PEM) for the SMTP TLS connections; production uses NODE_EXTRA_CA_CERTS. */
  tlsCa?: string[];
  /** Connections per server pool. */
  maxConnections?: number;
  /** OAuth 2.0: which grant a server uses and the single source of access tokens. */
  grants?: GrantSource;
  tokens?: AccessTokenSource;
  /** The egress policy every connection to a server's host goes through (absent: the operator set the host). */
  egress?: EgressGuard | undefined;
}

export interface SendResult {
  messageId: string;
  accepted: string[];
  rejected: { address: string; responseCode?: number; response?: string }[];
  response: string;
}

/** A nodemailer-style logger (bunyan-like `debug(data, fmt, ...args)`). */
interface ProtocolLogger {
  trace(...args: unknown[]): void;
  debug(...args: unknown[]): void;
  info(...args: unknown[]): void;
  warn(...args: unknown[]): void;
  error(...args: unknown[]): void;
  fatal(...args: unknown[]): void;
}

/** Masks credentials in an SMTP protocol line, whatever nodemailer already did (defence in depth). */
export function createLineMasker(): (direction: 'client' | 'server' | 'info', line: string) => string {
  let loginSteps = 0;
  return (direction, line) => {
    if (direction === 'client') {
      const auth = /^(AUTH\s+(PLAIN|XOAUTH2|OAUTHBEARER|LOGIN|CRAM-MD5))(\s+\S+)?/i.exec(line);
      if (auth) {
        loginSteps = /LOGIN|CRAM-MD5/i.test(auth[2]!) ? (auth[3] ? 1 : 2) : /PLAIN/i.test(auth[2]!) && !auth[3] ? 1 : 0;
        return auth[3] ? `${auth[1]} ****` : auth[1]!;
      }
      if (loginSteps > 0) {
        loginSteps--;
        return '****';
      }
      return line;
    }
    if (direction === 'server' && !/^334[ -]/.test(line)) loginSteps = 0;
    return line;
  };
}

/** A nodemailer logger that hands each masked protocol line to `sink`. */
export function protocolLogger(sink: (line: string, direction: 'client' | 'server' | 'info') => void): ProtocolLogger {
  const mask = createLineMasker();
  const emit =
    (level: string) =>
    (...args: unknown[]) => {
      let data: { tnx?: string } = {};
      if (args.length > 0 && typeof args[0] === 'object' && args[0] !== null) data = args.shift() as { tnx?: string };
      const message = format(...(args as [unknown, ...unknown[]]));
      // The egress-checked socket reaches nodemailer as a "proxied" one; that line would only confuse a reader.
      if (data.tnx === 'proxy') return;
      const direction = data.tnx === 'client' ? 'client' : data.tnx === 'server' ? 'server' : 'info';
      for (const raw of message.split(/\r?\n/)) {
        if (raw === '' || (direction === 'info' && level === 'trace')) continue;
        sink(mask(direction, raw), direction);
      }
    };
  return {
    trace: emit('trace'),
    debug: emit('debug'),
    info: emit('info'),
    warn: emit('warn'),
    error: emit('error'),
    fatal: emit('fatal'),
  };
}

type NodemailerAuth =
  | undefined
  | { user: string; pass: string }
  | {
      type: 'OAuth2';
      user: string;
      accessToken?: string;
      expires?: number;
      provisionCallback: (
        user: string,
        renew: boolean,
        cb: (err: Error | null, accessToken?: string, expires?: number) => void,
      ) => void;
    };

export interface BuildOptions {
  pool: boolean;
  maxConnections?: number;
  tlsCa?: string[];
  logger?: ProtocolLogger;
  tokens?: AccessTokenSource;
  egress?: EgressGuard | undefined;
}

function toNodemailerAuth(auth: SmtpAuth, tokens: AccessTokenSource | undefined): NodemailerAuth {
  if (auth.type === 'none') return undefined;
  if (auth.type === 'basic') return { user: auth.user, pass: auth.pass };
  const grantId = auth.grantId;
  return {
    type: 'OAuth2',
    user: auth.user,
    ...(auth.accessToken ? { accessToken: auth.accessToken, expires: auth.expires } : {}),
    // nodemailer asks here for every token; `renew` (after a rejected token) forces one refresh.
    provisionCallback(_user, renew, cb) {
      if (!tokens) {
        cb(forLibrary(credentialsFailure('OAuth 2.0 is not configured in this mailgate', 'token_needs_reauth')));
        return;
      }
      tokens.getAccessToken(grantId, { force: renew }).then(
        (t) => cb(null, t.accessToken, t.expiresAt),
        (err: unknown) =>
          cb(
            forLibrary(
              credentialsFailure(`no access token: ${(err as Error).message ?? String(err)}`, tokenProblemOf(err), err),
            ),
          ),
      );
    },
  };
}

type SocketCallback = (err: Error | null, socketOptions?: { connection: Socket }) => void;

/**
 * nodemailer's `getSocket` hook: mailgate opens the TCP connection itself, through the egress policy, and
 * nodemailer runs SMTP (and TLS, for smtps or STARTTLS) over it. nodemailer's own DNS resolution and cache
 * are bypassed, so the address checked is the address connected to.
 */
function egressSocket(guard: EgressGuard, host: string, port: number, timeoutMs: number) {
  return (_options: unknown, callback: SocketCallback) => {
    connectChecked(guard, { host, port, timeoutMs }).then(
      (connection) => callback(null, { connection }),
      (err: unknown) => callback(forLibrary(toConnectFailure(err))),
    );
  };
}

/** nodemailer options for one server (pure apart from the callbacks it embeds). */
export function buildTransportOptions(server: ResolvedServer, auth: SmtpAuth, options: BuildOptions) {
  const timeout = server.timeoutMs > 0 ? server.timeoutMs : FOREVER_MS;
  const secure = server.protocol === 'smtps';
  const loopback = isLoopbackHost(server.host);
  const requireTLS = !secure && (server.tls || (auth.type !== 'none' && !loopback));
  return {
    pool: options.pool,
    host: server.host,
    port: server.port,
    secure,
    requireTLS,
    ...(server.ehloName ? { name: server.ehloName } : {}),
    // Each wait (TCP connect, greeting, every reply) gets timeoutMs; nodemailer's connectionTimeout also bounds
    // the whole setup (connect + greeting + STARTTLS), so it gets twice that: a silent server is then reported
    // as a greeting timeout, not as a connect timeout.
    connectionTimeout: server.timeoutMs > 0 ? Math.min(FOREVER_MS, timeout * 2) : FOREVER_MS,
    greetingTimeout: timeout,
    socketTimeout: timeout,
    auth: toNodemailerAuth(auth, options.tokens),
    tls: { minVersion: 'TLSv1.2' as const, ...(options.tlsCa?.length ? { ca: options.tlsCa } : {}) },
    disableFileAccess: true,
    disableUrlAccess: true,
    ...(options.pool ? { maxConnections: options.maxConnections ?? 5, maxMessages: Infinity } : {}),
    ...(options.egress ? { getSocket: egressSocket(options.egress, server.host, server.port, timeout) } : {}),
    ...(options.logger ? { logger: options.logger, debug: true } : { logger: false }),
  };
}

export { isRawMessage, toNodemailerMessage, type RawMessage } from './nodemailer-message.js';

function toSendResult(info: {
  messageId: string;
  accepted: unknown[];
  rejected: unknown[];
  rejectedErrors?: unknown[];
  response: string;
}): SendResult {
  const errors = (info.rejectedErrors ?? []) as { recipient?: string; responseCode?: number; response?: string }[];
  return {
    messageId: info.messageId,
    accepted: info.accepted.map(String),
    rejected: info.rejected.map((r) => {
      const address = String(r);
      const e = errors.find((x) => x.recipient === address);
      return {
        address,
        ...(e?.responseCode ? { responseCode: e.responseCode } : {}),
        ...(e?.response ? { response: e.response } : {}),
      };
    }),
    response: info.response,
  };
}

type Mailer = ReturnType<typeof nodemailer.createTransport>;

interface PoolEntry {
  fingerprint: string;
  mailer: Mailer;
  /** The narrow client for raw messages (absent with protocol logging on: nodemailer logs every line). */
  wire: WirePool | undefined;
  inFlight: number;
  retired: boolean;
}

export type VerifyResult = { ok: true } | { ok: false; error: MailTransportFailure };

export interface MailTransport {
  /** Sends through the server's pooled transport, building or rebuilding it as needed. */
  send(server: ResolvedServer, message: ComposedMessage | RawMessage, messageId?: string): Promise<SendResult>;
  /** One fresh, unpooled connection: greeting, EHLO, TLS, AUTH; every protocol line goes to `onLine`. */
  verify(
    server: ResolvedServer,
    onLine: (line: string, direction: 'client' | 'server' | 'info') => void,
  ): Promise<VerifyResult>;
  /** Drops the cached transport of a server (its settings changed); in-flight sends finish first. */
  invalidate(serverId: string): void;
  close(): Promise<void>;
}

export function createMailTransport(deps: TransportDeps): MailTransport {
  const pools = new Map<string, PoolEntry>();
  const debugLogger = deps.debug
    ? (() => {
        const child = deps.log.child({ component: 'smtp' });
        return protocolLogger((line, direction) => child.debug({ direction }, line));
      })()
    : undefined;

  async function authFor(server: ResolvedServer): Promise<SmtpAuth> {
    const grant =
      server.authMethod === 'oauth2' && deps.grants
        ? await deps.grants.grantForServer(server.grantServerId ?? server.id)
        : null;
    const picked = pickSmtpAuth(server, grant);
    if (isAuthProblem(picked)) {
      throw credentialsFailure(picked.message, 'token_needs_reauth');
    }
    return picked;
  }

  function retire(serverId: string, entry: PoolEntry): void {
    entry.retired = true;
    if (pools.get(serverId) === entry) pools.delete(serverId);
    if (entry.inFlight === 0) closeEntry(entry);
  }

  function closeEntry(entry: PoolEntry): void {
    entry.mailer.close();
    entry.wire?.close();
  }

  async function poolFor(server: ResolvedServer): Promise<PoolEntry> {
    const existing = pools.get(server.id);
    // Version covers every field of the document (password included); the grant is checked by authFor.
    const base = `${server.source}:${server.version}:${server.passwordVersion}:${server.host}:${server.port}:${server.ehloName ?? ''}`;
    if (existing && existing.fingerprint.startsWith(`${base}|`) && server.authMethod !== 'oauth2') return existing;
    const auth = await authFor(server);
    const fingerprint = `${base}|${auth.type === 'OAuth2' ? auth.grantId : auth.type}`;
    const current = pools.get(server.id);
    if (current && current.fingerprint === fingerprint) return current;
    if (current) retire(server.id, current);
    const options = buildTransportOptions(server, auth, {
      pool: true,
      maxConnections: deps.maxConnections,
      tlsCa: deps.tlsCa,
      logger: debugLogger,
      tokens: deps.tokens,
      egress: deps.egress,
    });
    const entry: PoolEntry = {
      fingerprint,
      mailer: nodemailer.createTransport(options as Parameters<typeof nodemailer.createTransport>[0]),
      wire: debugLogger
        ? undefined
        : createWirePool({
            host: server.host,
            port: server.port,
            secure: options.secure,
            requireTLS: options.requireTLS,
            name: server.ehloName ?? undefined,
            timeoutMs: server.timeoutMs,
            tls: options.tls,
            egress: deps.egress,
            auth,
            tokens: deps.tokens,
            maxConnections: deps.maxConnections ?? 5,
          }),
      inFlight: 0,
      retired: false,
    };
    // Fewer, larger socket writes per message (see coalesce.ts).
    entry.mailer.use('stream', coalesceChunks);
    pools.set(server.id, entry);
    return entry;
  }

  return {
    async send(server, message, messageId) {
      const entry = await poolFor(server);
      entry.inFlight++;
      try {
        const mail = toNodemailerMessage(message, messageId);
        // A large message goes to nodemailer, which streams it in pieces: one buffer would hold the event loop.
        if (entry.wire && 'raw' in mail && mail.raw && mail.raw.length <= WIRE_MAX_BYTES) {
          const sent = await entry.wire.send(mail.envelope, mail.raw);
          // The id of the message as written (mime-writer.ts), which nodemailer would report, else the one given.
          const id = ('messageId' in mail && mail.messageId) || messageId || '';
          if (!isHandedOver(sent)) return toSendResult({ ...sent, messageId: id });
        }
        const info = (await entry.mailer.sendMail(mail)) as Parameters<typeof toSendResult>[0];
        return toSendResult(info);
      } catch (error) {
        throw toMailTransportFailure(error);
      } finally {
        entry.inFlight--;
        if (entry.retired && entry.inFlight === 0) closeEntry(entry);
      }
    },

    async verify(server, onLine) {
      let auth: SmtpAuth;
      try {
        auth = await authFor(server);
      } catch (error) {
        return { ok: false, error: toMailTransportFailure(error) };
      }
      const logger = protocolLogger((line, direction) => {
        onLine(line, direction);
        debugLogger?.debug({ tnx: direction }, line);
      });
      const options = buildTransportOptions(server, auth, {
        pool: false,
        tlsCa: deps.tlsCa,
        logger,
        tokens: deps.tokens,
        egress: deps.egress,
      });
      const mailer = nodemailer.createTransport(options as Parameters<typeof nodemailer.createTransport>[0]);
      try {
        await mailer.verify();
        return { ok: true };
      } catch (error) {
        return { ok: false, error: toMailTransportFailure(error) };
      } finally {
        mailer.close();
      }
    },

    invalidate(serverId) {
      const entry = pools.get(serverId);
      if (entry) retire(serverId, entry);
    },

    async close() {
      for (const [id, entry] of [...pools]) retire(id, entry);
    },
  };
}
