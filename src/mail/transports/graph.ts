import type { ResolvedServer } from '../servers.js';
import { graphError } from './api-answer.js';
import { createApiTransport, type ApiTransportDeps } from './http-api.js';

/**
 * Microsoft Graph `POST /v1.0/users/{mailbox}/sendMail` with the MIME message base64-encoded (Content-Type
 * text/plain), for tenants where SMTP AUTH is off. Graph takes at most 4 MB per request; base64 makes 3 bytes
 * four, so a MIME message over 3 MB is refused before any request with a clear reason (an upload session would
 * need Mail.ReadWrite to create a draft, which a send-only app does not have).
 */

export const GRAPH_MAX_MIME_BYTES = 3 * 1024 * 1024;
/** Graph answers 429 MailboxConcurrency beyond four concurrent requests per mailbox. */
export const GRAPH_CONCURRENCY_PER_MAILBOX = 4;

/**
 * `baseUrlOf` gives the Graph base URL of a server's integration (sovereign clouds: US Government, China), or
 * null for `baseUrl` (MAILGATE_GRAPH_URL).
 */
export function createGraphTransport(
  baseUrl: string,
  deps: ApiTransportDeps,
  baseUrlOf?: (server: ResolvedServer) => Promise<string | null>,
) {
  return createApiTransport(
    {
      api: 'graph',
      label: 'Microsoft Graph',
      baseUrl,
      baseUrlOf,
      maxMimeBytes: GRAPH_MAX_MIME_BYTES,
      send: (mailbox, mime) => ({
        path: `/v1.0/users/${encodeURIComponent(mailbox)}/sendMail`,
        headers: { 'content-type': 'text/plain' },
        body: mime.toString('base64'),
      }),
      accepted: (answer) => `${answer.status} Accepted by Microsoft Graph sendMail`,
      probe: {
        path: (mailbox) => `/v1.0/users/${encodeURIComponent(mailbox)}?$select=mail,userPrincipalName`,
        needs: 'User.Read or User.ReadBasic.All (Mail.Send alone cannot)',
        found: () => 'the mailbox exists and the token may read it',
      },
      error: graphError,
    },
    deps,
  );
}
