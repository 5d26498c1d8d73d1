import { gmailError } from './api-answer.js';
import { createApiTransport, type ApiTransportDeps } from './http-api.js';

/**
 * The Gmail API `POST /gmail/v1/users/{mailbox}/messages/send` with `{raw}`: the MIME message base64url-encoded.
 * Quotas answer 429 or 403 with a reason (`rateLimitExceeded`, `userRateLimitExceeded`, `dailyLimitExceeded`):
 * the mailbox waits (the daily one until the next window), the message keeps its attempts.
 */

export function createGmailApiTransport(baseUrl: string, deps: ApiTransportDeps) {
  return createApiTransport(
    {
      api: 'gmail_api',
      label: 'Gmail API',
      baseUrl,
      send: (mailbox, mime) => ({
        path: `/gmail/v1/users/${encodeURIComponent(mailbox)}/messages/send`,
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ raw: mime.toString('base64url') }),
      }),
      accepted: (answer) => {
        let id = '';
        try {
          const parsed = (JSON.parse(answer.body) as { id?: unknown }).id;
          if (typeof parsed === 'string') id = parsed;
        } catch {
          // An accepted send with an unreadable body is still accepted.
        }
        return `${answer.status} Accepted by the Gmail API${id ? ` (id ${id})` : ''}`;
      },
      probe: {
        path: (mailbox) => `/gmail/v1/users/${encodeURIComponent(mailbox)}/profile`,
        needs: 'gmail.readonly, gmail.metadata or https://mail.google.com/ (gmail.send alone cannot)',
        found: () => 'the mailbox profile could be read',
      },
      error: gmailError,
    },
    deps,
  );
}
