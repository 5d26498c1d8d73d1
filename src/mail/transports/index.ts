import type { ResolvedServer } from '../servers.js';
import type { MailTransport, TransportDeps } from '../transport.js';
import { createGmailApiTransport } from './gmail-api.js';
import { createGraphTransport, GRAPH_CONCURRENCY_PER_MAILBOX } from './graph.js';
import { createMailboxGate, type MailboxGate } from './mailbox-gate.js';
import { createSmtpTransport } from './smtp.js';

/**
 * One MailTransport for the queue and Test connection, picking by the server's `protocol`: `smtp`/`smtps`
 * through nodemailer (src/mail/transport.ts), `graph` through Microsoft Graph sendMail, `gmail_api` through the
 * Gmail API. The choice is made per call, so a server switched to Graph sends its next message through Graph.
 */

export interface TransportsDeps extends TransportDeps {
  /** MAILGATE_GRAPH_URL and MAILGATE_GMAIL_API_URL. */
  graphUrl: string;
  gmailApiUrl: string;
  /** The Graph base URL an integration sets (a sovereign cloud), or null: then MAILGATE_GRAPH_URL. */
  graphBaseUrlOf?: ((integrationId: string) => Promise<string | null>) | undefined;
  /** The egress-checked fetch for those admin-entered URLs. */
  egressFetch?: typeof fetch | undefined;
  now?: () => number;
  /** The per-mailbox gate (shared with the announcements of other instances). */
  gate?: MailboxGate;
  onSlow?: (key: string, until: number) => void;
}

export function createTransports(deps: TransportsDeps): MailTransport {
  const now = deps.now ?? Date.now;
  const smtp = createSmtpTransport(deps);
  const api = {
    log: deps.log,
    grants: deps.grants,
    tokens: deps.tokens,
    gate: deps.gate ?? createMailboxGate({ limit: GRAPH_CONCURRENCY_PER_MAILBOX, now }),
    now,
    onSlow: deps.onSlow,
    egressFetch: deps.egressFetch,
  };
  const graphBaseUrlOf = deps.graphBaseUrlOf;
  const graph = createGraphTransport(
    deps.graphUrl,
    api,
    graphBaseUrlOf
      ? async (server) => (server.oauthIntegrationId ? graphBaseUrlOf(server.oauthIntegrationId) : null)
      : undefined,
  );
  const gmail = createGmailApiTransport(deps.gmailApiUrl, api);
  const pick = (server: ResolvedServer): MailTransport =>
    server.protocol === 'graph' ? graph : server.protocol === 'gmail_api' ? gmail : smtp;

  return {
    send: (server, message, messageId) => pick(server).send(server, message, messageId),
    verify: (server, onLine) => pick(server).verify(server, onLine),
    invalidate: (serverId) => smtp.invalidate(serverId),
    close: () => smtp.close(),
  };
}
