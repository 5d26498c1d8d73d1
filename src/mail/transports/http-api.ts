import { findAppError } from '../../errors.js';
import type { Logger } from '../../log.js';
import { type AccessTokenSource, type GrantSource, isAuthProblem, pickSmtpAuth } from '../auth.js';
import type { ComposedMessage } from '../compose.js';
import type { ResolvedServer } from '../servers.js';
import type { MailTransport, SendResult } from '../transport.js';
import { MailTransportFailure, toMailTransportFailure } from '../transport-failure.js';
import type { ApiAnswer, ApiError } from './api-answer.js';
import type { MailboxGate } from './mailbox-gate.js';
import { composeMime } from './smtp.js';

/**
 * The HTTP mail transports (Microsoft Graph, the Gmail API) share everything but the request and the reading
 * of errors: the token from the token service (a 401 forces one refresh, then counts as rejected credentials),
 * the MIME message of the SMTP path, the per-mailbox gate, and failures as MailTransportFailure (kind `api`)
 * so diagnose() and the queue treat every transport alike. The environment's base URLs are the operator's
 * and use the plain fetch; a base URL an admin entered on an integration (a sovereign cloud's Graph) goes
 * through the egress-checked fetch, like every other admin-entered address.
 */

export interface ApiSpec {
  api: 'graph' | 'gmail_api';
  label: string;
  baseUrl: string;
  /** The base URL the server's integration sets (admin-entered), or null for `baseUrl`. */
  baseUrlOf?: ((server: ResolvedServer) => Promise<string | null>) | undefined;
  /** Larger MIME messages are refused before any request (Graph: the 4 MB request limit, base64 included). */
  maxMimeBytes?: number;
  send(mailbox: string, mime: Buffer): { path: string; headers: Record<string, string>; body: string };
  /** What the provider says about an accepted message, for the queue's record. */
  accepted(answer: ApiAnswer): string;
  /** A harmless read for Test connection, and the permission it needs. */
  probe: { path(mailbox: string): string; needs: string; found(answer: ApiAnswer): string };
  error(answer: ApiAnswer, now: number): ApiError;
}

export interface ApiTransportDeps {
  log: Logger;
  grants?: GrantSource | undefined;
  tokens?: AccessTokenSource | undefined;
  gate: MailboxGate;
  now: () => number;
  fetch?: typeof fetch;
  /** The egress-checked fetch for admin-entered base URLs (src/net/fetch.ts). */
  egressFetch?: typeof fetch | undefined;
  /** A mailbox was slowed by its provider: tells the other instances (their gates slow it too). */
  onSlow?: ((key: string, until: number) => void) | undefined;
}

const DEFAULT_TIMEOUT_MS = 30_000;

interface Endpoint {
  base: string;
  fetch: typeof fetch;
}

function credentials(message: string, kind: 'token_needs_reauth' | 'token_unavailable', cause?: unknown) {
  return new MailTransportFailure({ kind, message }, cause);
}

export function createApiTransport(spec: ApiSpec, deps: ApiTransportDeps): MailTransport {
  const doFetch = deps.fetch ?? fetch;
  const trimmed = (url: string) => url.replace(/\/+$/, '');
  const envBase = trimmed(spec.baseUrl);

  /** Where this server's requests go, and through which fetch. */
  async function endpointOf(server: ResolvedServer): Promise<Endpoint> {
    const own = spec.baseUrlOf ? await spec.baseUrlOf(server) : null;
    if (own) return { base: trimmed(own), fetch: deps.egressFetch ?? doFetch };
    return { base: envBase, fetch: doFetch };
  }

  async function authFor(server: ResolvedServer) {
    const grant = deps.grants ? await deps.grants.grantForServer(server.grantServerId ?? server.id) : null;
    const picked = pickSmtpAuth(server, grant);
    if (isAuthProblem(picked)) throw credentials(picked.message, 'token_needs_reauth');
    if (picked.type !== 'OAuth2') throw credentials(`${spec.label} needs OAuth 2.0`, 'token_needs_reauth');
    return picked;
  }

  async function token(grantId: string, force: boolean): Promise<{ accessToken: string; expiresAt: number }> {
    if (!deps.tokens) throw credentials('OAuth 2.0 is not configured in this mailgate', 'token_needs_reauth');
    try {
      return await deps.tokens.getAccessToken(grantId, { force });
    } catch (err) {
      const kind = findAppError(err, 'reauth_required') ? 'token_needs_reauth' : 'token_unavailable';
      throw credentials(`no access token: ${(err as Error).message ?? String(err)}`, kind, err);
    }
  }

  async function call(
    server: ResolvedServer,
    { base, fetch: doFetch }: Endpoint,
    path: string,
    init: { method: string; headers?: Record<string, string>; body?: string },
    accessToken: string,
  ): Promise<ApiAnswer> {
    const timeout = server.timeoutMs > 0 ? server.timeoutMs : DEFAULT_TIMEOUT_MS;
    try {
      const res = await doFetch(`${base}${path}`, {
        method: init.method,
        headers: { ...init.headers, authorization: `Bearer ${accessToken}` },
        ...(init.body !== undefined ? { body: init.body } : {}),
        redirect: 'manual',
        signal: AbortSignal.timeout(timeout),
      });
      return { status: res.status, headers: res.headers, body: await res.text() };
    } catch (err) {
      const denied = findAppError(err, 'egress_denied');
      if (denied)
        throw new MailTransportFailure({ kind: 'egress_denied', message: denied.message, hint: denied.hint }, err);
      // No HTTP answer at all (network, DNS, TLS, timeout): status 0, the system's code as the provider code.
      const e = err as { name?: string; message?: string; cause?: { code?: unknown; message?: string } };
      const code = e.name === 'TimeoutError' ? 'timeout' : typeof e.cause?.code === 'string' ? e.cause.code : 'network';
      throw new MailTransportFailure(
        {
          kind: 'api',
          api: spec.api,
          message: `${spec.label} at ${base} could not be reached: ${e.cause?.message ?? e.message ?? String(err)}`,
          httpStatus: 0,
          providerCode: code,
        },
        err,
      );
    }
  }

  /** One request with the current token; on 401 one forced refresh and one more request. */
  async function authorized(
    server: ResolvedServer,
    endpoint: Endpoint,
    grantId: string,
    path: string,
    init: { method: string; headers?: Record<string, string>; body?: string },
    onLine?: (line: string, direction: 'client' | 'server' | 'info') => void,
  ): Promise<ApiAnswer> {
    let t = await token(grantId, false);
    onLine?.(
      `access token obtained (valid for ${Math.max(0, Math.round((t.expiresAt - deps.now()) / 1000))} s)`,
      'info',
    );
    onLine?.(`${init.method} ${path}`, 'client');
    let answer = await call(server, endpoint, path, init, t.accessToken);
    onLine?.(`${answer.status}`, 'server');
    if (answer.status === 401) {
      onLine?.('the token was refused: refreshing it once', 'info');
      t = await token(grantId, true);
      onLine?.(`${init.method} ${path}`, 'client');
      answer = await call(server, endpoint, path, init, t.accessToken);
      onLine?.(`${answer.status}`, 'server');
    }
    return answer;
  }

  function failure(answer: ApiAnswer): MailTransportFailure {
    const e = spec.error(answer, deps.now());
    return new MailTransportFailure({
      kind: 'api',
      api: spec.api,
      message: `${spec.label} answered ${answer.status}${e.providerCode ? ` ${e.providerCode}` : ''}: ${e.message}`,
      httpStatus: answer.status,
      providerCode: e.providerCode,
      retryAt: e.retryAt,
    });
  }

  function slowedFailure(until: number): MailTransportFailure {
    return new MailTransportFailure({
      kind: 'api',
      api: spec.api,
      message: `${spec.label} asked to slow down for this mailbox until ${new Date(until).toISOString()}: not called before then`,
      httpStatus: 429,
      providerCode: 'mailbox_slowed',
      retryAt: until,
    });
  }

  const gateKey = (mailbox: string) => `${spec.api}:${mailbox.toLowerCase()}`;

  return {
    async send(server: ResolvedServer, message: ComposedMessage, messageId?: string): Promise<SendResult> {
      try {
        const auth = await authFor(server);
        const mime = await composeMime(message, messageId, { keepBcc: true });
        if (spec.maxMimeBytes !== undefined && mime.length > spec.maxMimeBytes) {
          throw new MailTransportFailure({
            kind: 'api',
            api: spec.api,
            message: `the message is ${mime.length} bytes; ${spec.label} takes at most ${spec.maxMimeBytes} bytes in one request`,
            httpStatus: 413,
            providerCode: 'message_too_large',
          });
        }
        const endpoint = await endpointOf(server);
        const key = gateKey(auth.user);
        return await deps.gate.run(key, async () => {
          const until = deps.gate.slowedUntil(key);
          if (until !== null) throw slowedFailure(until);
          const request = spec.send(auth.user, mime);
          const answer = await authorized(server, endpoint, auth.grantId, request.path, { method: 'POST', ...request });
          if (answer.status >= 200 && answer.status < 300) {
            return {
              messageId: messageId ?? '',
              accepted: [...message.envelope.to],
              rejected: [],
              response: spec.accepted(answer),
            };
          }
          const f = failure(answer);
          if (f.retryAt !== undefined && spec.error(answer, deps.now()).throttled) {
            deps.gate.slow(key, f.retryAt);
            deps.onSlow?.(key, f.retryAt);
          }
          throw f;
        });
      } catch (error) {
        throw toMailTransportFailure(error);
      }
    },

    async verify(server, onLine) {
      try {
        const auth = await authFor(server);
        const endpoint = await endpointOf(server);
        onLine(`${spec.label} at ${endpoint.base}, mailbox ${auth.user}`, 'info');
        const answer = await authorized(
          server,
          endpoint,
          auth.grantId,
          spec.probe.path(auth.user),
          { method: 'GET' },
          onLine,
        );
        if (answer.status >= 200 && answer.status < 300) {
          onLine(`checked: ${spec.probe.found(answer)}`, 'info');
        } else if (answer.status === 403) {
          onLine(
            `not checked: the mailbox itself (reading it needs ${spec.probe.needs}; a send-only permission cannot read a profile)`,
            'info',
          );
        } else {
          return { ok: false, error: failure(answer) };
        }
        onLine('not checked: sending (Test connection sends no message; use Send test email)', 'info');
        return { ok: true };
      } catch (error) {
        return { ok: false, error: toMailTransportFailure(error) };
      }
    },

    invalidate() {},
    async close() {},
  };
}
