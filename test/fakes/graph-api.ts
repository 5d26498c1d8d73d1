import { startMailApiFake, type MailApiFake } from './mail-api.js';
import type { FakeProvider } from './oidc-provider.js';

/**
 * Microsoft Graph as mailgate uses it: `POST /v1.0/users/{mailbox}/sendMail` with a base64 MIME body
 * (text/plain), 202 with no body; `GET /v1.0/users/{mailbox}` needs User.Read (Mail.Send alone gets 403).
 * Errors are `{error: {code, message}}`; send-as refusals are `ErrorSendAsDenied`. App-only tokens (client
 * credentials, scope `https://graph.microsoft.com/.default`: the Mail.Send application permission) send as any
 * mailbox of the tenant.
 */
export function startGraphFake(
  provider: FakeProvider,
  /** `resource`: the cloud's Graph origin its tokens must name (another cloud's Graph is another resource). */
  options: { port?: number; resource?: string } = {},
): Promise<MailApiFake> {
  const resource = options.resource ?? 'https://graph.microsoft.com';
  return startMailApiFake(provider, {
    sendPath: /^\/v1\.0\/users\/([^/]+)\/sendMail$/,
    profilePath: /^\/v1\.0\/users\/([^/]+)$/,
    sendScope: `${resource}/Mail.Send`,
    readScopes: [`${resource}/User.Read`, 'User.Read'],
    appOnlyScope: `${resource}/.default`,
    mimeOf: (body) => Buffer.from(body, 'base64').toString('utf8'),
    okSend: () => ({ status: 202, body: '' }),
    profile: (mailbox) => ({ mail: mailbox, userPrincipalName: mailbox }),
    error: (fault, message) => ({ error: { code: fault.code ?? `Http${fault.status}`, message } }),
    sendAsCode: 'ErrorSendAsDenied',
    ...(options.port ? { port: options.port } : {}),
  });
}
