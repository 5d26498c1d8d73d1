import type { Diagnosis, FailureClass } from './diagnose.js';
import type { DiagnosisCode } from './diagnosis-codes.js';
import type { MailTransportFailure } from './transport-failure.js';

/**
 * Diagnoses of Microsoft Graph and Gmail API answers (failures of kind `api`). Rate limits and quotas are
 * `temporary` with `retryAt` (the provider's time) and `throttled` (the attempt is not the message's fault);
 * permissions the server lacks are `credentials` (pause the server: every message would fail alike).
 */

const SEND_AS = /SendAsDenied|send ?as|delegation denied|not allowed to send/i;

export function diagnoseApi(err: MailTransportFailure): Diagnosis {
  const status = err.httpStatus ?? 0;
  const code = err.providerCode ?? '';
  const label = err.api === 'gmail_api' ? 'The Gmail API' : 'Microsoft Graph';
  const result = (c: DiagnosisCode, cls: FailureClass, hint: string, extra: Partial<Diagnosis> = {}): Diagnosis => ({
    code: c,
    class: cls,
    hint,
    message: err.message,
    ...(err.retryAt !== undefined ? { retryAt: err.retryAt } : {}),
    ...extra,
  });

  if (status === 0) {
    return result(
      'api_unreachable',
      'temporary',
      `${label} could not be reached (${code}): mailgate retries with backoff. Check mailgate's outbound HTTPS access and ${err.api === 'gmail_api' ? 'MAILGATE_GMAIL_API_URL' : 'MAILGATE_GRAPH_URL'}.`,
    );
  }
  if (code === 'dailyLimitExceeded') {
    return result(
      'api_daily_limit',
      'temporary',
      `${label} says this mailbox or project used its daily quota: its mail waits until the next day window (${new Date(err.retryAt ?? 0).toISOString()}); other servers go on. Ask for a higher quota in the Google Cloud console if this happens often.`,
      { throttled: true },
    );
  }
  if (status === 429 || code === 'rateLimitExceeded' || code === 'userRateLimitExceeded' || code === 'quotaExceeded') {
    return result(
      'api_throttled',
      'temporary',
      `${label} asked to slow down for this mailbox (${status}${code ? ` ${code}` : ''}): its mail waits until the time the provider gave, other mailboxes go on. Frequent throttling means more mail than the mailbox may send: spread it over several mailboxes.`,
      { throttled: true },
    );
  }
  if (SEND_AS.test(code) || SEND_AS.test(err.message)) {
    return result(
      'send_as_denied',
      'credentials',
      `${label} refused to send as the From address: the authorized mailbox lacks the "Send As" (or "Send on behalf") right on it. Grant it (Exchange admin center → the shared mailbox → Mailbox delegation; Gmail: Settings → Accounts → Send mail as), or set fromAddress to the mailbox itself, then press Resume.`,
    );
  }
  if (status === 413 || code === 'message_too_large' || code === 'ErrorMessageSizeExceeded') {
    return result(
      'api_message_too_large',
      'permanent',
      `${label} does not take a message this large in one request (Microsoft Graph: 3 MB of MIME, i.e. 4 MB base64-encoded). Send large attachments as links, or use an SMTP server for this mail.`,
    );
  }
  if (status === 401) {
    return result(
      'api_token_rejected',
      'credentials',
      `${label} rejected the access token even after a refresh: the authorization lacks the permission to send (Microsoft: Mail.Send; Google: gmail.send) or was revoked. Press Re-authorize; for a server switched from SMTP the new authorization asks for the right scope.`,
    );
  }
  if (status === 403) {
    return result(
      'api_permission_missing',
      'credentials',
      `${label} refused the request (403${code ? ` ${code}` : ''}): the app or the mailbox lacks the permission to send (Microsoft: Mail.Send, admin consent for app-only; Google: gmail.send, the Gmail API enabled in the project). Fix it at the provider, then press Resume.`,
    );
  }
  if (status === 404 || code === 'ErrorInvalidUser' || code === 'MailboxNotEnabledForRESTAPI') {
    return result(
      'api_mailbox_not_found',
      'credentials',
      `${label} does not know the mailbox ${code ? `(${code}) ` : ''}: check the user name (the mailbox address); Microsoft Graph needs an Exchange Online mailbox (not on-premises).`,
    );
  }
  if (status >= 500) {
    return result(
      'api_unavailable',
      'temporary',
      `${label} failed on its side (${status}): mailgate retries${err.retryAt !== undefined ? ' at the time the provider gave' : ' with backoff'}.`,
    );
  }
  return result(
    'api_rejected',
    'permanent',
    `${label} rejected the message (${status}${code ? ` ${code}` : ''}): read the message; it will not be retried.`,
  );
}
