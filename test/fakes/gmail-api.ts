import { randomBytes } from 'node:crypto';
import { startMailApiFake, type MailApiFake } from './mail-api.js';
import type { FakeProvider } from './oidc-provider.js';

/**
 * The Gmail API as mailgate uses it: `POST /gmail/v1/users/{mailbox}/messages/send` with `{raw}` (base64url
 * MIME), 200 with `{id, threadId, labelIds}`; `GET .../profile` needs a read scope (gmail.send alone gets 403).
 * Errors are `{error: {code, message, errors: [{reason}], status}}`.
 */
export function startGmailFake(provider: FakeProvider): Promise<MailApiFake> {
  return startMailApiFake(provider, {
    sendPath: /^\/gmail\/v1\/users\/([^/]+)\/messages\/send$/,
    profilePath: /^\/gmail\/v1\/users\/([^/]+)\/profile$/,
    sendScope: 'https://www.googleapis.com/auth/gmail.send',
    readScopes: ['https://mail.google.com/', 'https://www.googleapis.com/auth/gmail.readonly'],
    mimeOf: (body) => Buffer.from((JSON.parse(body) as { raw: string }).raw, 'base64url').toString('utf8'),
    okSend: () => {
      const id = randomBytes(8).toString('hex');
      return { status: 200, body: JSON.stringify({ id, threadId: id, labelIds: ['SENT'] }) };
    },
    profile: (mailbox) => ({ emailAddress: mailbox, messagesTotal: 0 }),
    error: (fault, message) => ({
      error: {
        code: fault.status,
        message,
        errors: [{ reason: fault.code ?? 'backendError', domain: 'global', message }],
        status: fault.status === 429 ? 'RESOURCE_EXHAUSTED' : 'FAILED_PRECONDITION',
      },
    }),
    sendAsCode: 'forbidden',
  });
}
