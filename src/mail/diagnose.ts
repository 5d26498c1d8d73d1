import { diagnoseApi } from './diagnose-api.js';
import type { DiagnosisCode } from './diagnosis-codes.js';
import { toMailTransportFailure } from './transport-failure.js';

/**
 * Failure → what to do. The transport's MailTransportFailure (SMTP replies, socket, TLS and DNS errors, egress
 * and token problems, in one shape) is mapped onto a short code, a one-line hint an admin can act on, and a class that drives the queue: `temporary` (retry with backoff), `permanent`
 * (error queue at once), `credentials` (pause the server and hold its messages until the credentials change).
 */

export type FailureClass = 'temporary' | 'permanent' | 'credentials';

export interface Diagnosis {
  code: string;
  hint: string;
  class: FailureClass;
  message: string;
  responseCode?: number;
  /** The provider said when to try again (Retry-After, a quota window): the queue waits until then. */
  retryAt?: number;
  /** A rate limit or quota: the attempt is not counted against the message. */
  throttled?: boolean;
}

export interface DiagnoseContext {
  /** The connection opened but the server never said a word (known from the transcript). */
  noGreeting?: boolean;
  host?: string;
  port?: number;
  protocol?: string;
  tls?: boolean;
}

const CERT_ERRORS = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_UNTRUSTED',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);

function where(ctx: DiagnoseContext): string {
  return ctx.host ? `${ctx.host}${ctx.port ? `:${ctx.port}` : ''}` : 'the server';
}

/**
 * Whether a peer's first line is an SMTP greeting: 220 (ready), or 421 / 554 (an SMTP server refusing service,
 * RFC 5321 sections 3.1 and 4.2). Anything else is another protocol, whose bytes are not repeated.
 */
export function isSmtpGreeting(line: string): boolean {
  return /^(220|421|554)(?:[ -]|$)/.test(line);
}

/** Reads the transport's one failure shape; anything else is translated into it first. */
export function diagnose(error: unknown, ctx: DiagnoseContext = {}): Diagnosis {
  const err = toMailTransportFailure(error);
  const message = err.message;
  const response = err.response ?? '';
  const rc = err.responseCode;
  const has = (c: string) => err.codes.includes(c);
  const result = (code: DiagnosisCode, cls: FailureClass, hint: string): Diagnosis => ({
    code,
    class: cls,
    hint,
    message,
    ...(rc !== undefined ? { responseCode: rc } : {}),
  });

  // Refused by the egress policy before any byte was sent: retrying cannot help, only a settings change can.
  if (err.kind === 'egress_denied')
    return { code: 'egress_denied' satisfies DiagnosisCode, class: 'permanent', hint: err.hint ?? '', message };
  // Whatever answered is not SMTP (an SSH, HTTP or database port…): its bytes are never repeated, so a
  // Test connection cannot be used to read other services' banners.
  if (
    err.stage === 'EPROTOCOL' &&
    err.command === 'CONN' &&
    /^Invalid greeting/.test(message) &&
    !isSmtpGreeting(response)
  ) {
    return {
      code: 'not_smtp' satisfies DiagnosisCode,
      class: 'temporary',
      message: `${where(ctx)} is not an SMTP server (its greeting is not 220)`,
      hint: `Check the host and the port: ${where(ctx)} answered, but not as an SMTP server. SMTP servers usually listen on 25, 587 (submission) or 465 (smtps).`,
    };
  }
  if (err.kind === 'api') return diagnoseApi(err);
  // Nobody authorized a mailbox yet: saying "no longer valid" here would contradict the server page.
  if (err.kind === 'token_needs_reauth' && /no mailbox is authorized yet/.test(message)) {
    return result(
      'oauth_not_authorized',
      'credentials',
      'No mailbox is authorized for this server yet: press Authorize on the server page and sign in with the mailbox it sends from.',
    );
  }
  if (err.kind === 'token_needs_reauth') {
    return result(
      'oauth_needs_reauth',
      'credentials',
      'The mailbox authorization is no longer valid (revoked, expired or password changed): press Re-authorize on the server page.',
    );
  }
  if (err.kind === 'token_unavailable') {
    // The token endpoint is down or throttling (429): every message of the grant waits alike, none is at fault,
    // so like a provider's rate limit the attempt is not counted (a token storm must not fail queued mail).
    return {
      ...result(
        'oauth_token_unavailable',
        'temporary',
        'No access token could be obtained from the identity provider right now; mailgate retries. If it persists, check the OAuth 2.0 integration and the provider status.',
      ),
      throttled: true,
    };
  }

  // Replies first: they say exactly what the server thinks.
  if (/\b5\.7\.139\b|SmtpClientAuthentication is disabled/i.test(response)) {
    return result(
      'smtp_auth_disabled',
      'credentials',
      'Microsoft 365 has SMTP AUTH switched off for this tenant or mailbox (5.7.139; Security Defaults or a "block legacy authentication" policy), so even OAuth 2.0 over SMTP is refused. Press Switch to Microsoft Graph on the server page (it keeps this server, its settings and its queue and asks for authorization with the Mail.Send permission), or, where the tenant allows it, enable "Authenticated SMTP" for the mailbox (Microsoft 365 admin center → the user → Mail → Manage email apps).',
    );
  }
  if (/\b5\.7\.30\b/.test(response)) {
    return result(
      'basic_auth_retired',
      'credentials',
      'Microsoft 365 no longer accepts basic authentication (5.7.30): press Switch to Microsoft Graph on the server page (it keeps the server and its queue and asks for authorization with Mail.Send), or set the authentication method to OAuth 2.0 and press Authorize.',
    );
  }
  if (/\b5\.7\.60\b|SendAsDenied/i.test(response)) {
    return result(
      'send_as_denied',
      'credentials',
      'The mailbox is not allowed to send as the From address (5.7.60 SendAsDenied): grant the authenticated mailbox the "Send As" right on the From address (Exchange admin center → the shared mailbox → Mailbox delegation), or set fromAddress to the mailbox itself, then press Resume.',
    );
  }
  if (rc === 534 || /\b5\.7\.9\b/.test(response)) {
    return result(
      'app_password_required',
      'credentials',
      'Gmail refuses the account password (534 5.7.9): use an app password (requires 2-Step Verification) or switch to OAuth 2.0.',
    );
  }
  if (rc === 530 && /STARTTLS/i.test(response)) {
    return result(
      'must_starttls',
      'permanent',
      `${where(ctx)} requires STARTTLS before anything else (530): tick TLS, or use protocol smtps if the port expects implicit TLS.`,
    );
  }
  if (rc === 535 || (err.stage === 'EAUTH' && rc !== undefined && rc >= 500)) {
    return result(
      'auth_failed',
      'credentials',
      'The server rejected the user name or password (535): check both; change the password with "Change password" ticked. For Gmail and Microsoft 365 consider OAuth 2.0.',
    );
  }
  if (rc === 530) {
    return result(
      'auth_required',
      'credentials',
      `${where(ctx)} requires authentication (530): choose an authentication method and enter credentials.`,
    );
  }
  if ((rc === 550 || rc === 551 || rc === 553 || rc === 554) && /relay|5\.7\.1\b/i.test(response)) {
    return result(
      'relay_denied',
      'permanent',
      'The server refuses to relay for this sender or recipient: check the host, the user name and password (most servers relay only for authenticated users), and that fromAddress belongs to the account.',
    );
  }
  if (err.command === 'STARTTLS' || (err.stage === 'ECONNECTION' && /STARTTLS/.test(message))) {
    return result(
      'starttls_unavailable',
      'temporary',
      `TLS is on but ${where(ctx)} does not offer STARTTLS${rc ? ` (${rc})` : ''}: mailgate will not send credentials or mail in plaintext. Use the server's submission port with STARTTLS (usually 587), protocol smtps (465), or untick TLS for a trusted local relay without authentication.`,
    );
  }
  if (err.stage === 'EAUTH' && rc === undefined) {
    return result(
      'auth_not_possible',
      'credentials',
      `Authentication could not start: ${message}. Check the authentication method and the credentials, and that the server offers AUTH (it often does only after STARTTLS).`,
    );
  }
  if (rc === 421) {
    return result(
      'server_busy',
      'temporary',
      `${where(ctx)} is closing the connection for now (421): usually overload or rate limiting; mailgate retries with backoff.`,
    );
  }
  if (rc !== undefined && rc >= 400 && rc < 500) {
    return result(
      'temporary_rejection',
      'temporary',
      `${where(ctx)} asked to try again later (${rc}): greylisting, a full mailbox or a local problem at the server; mailgate retries with backoff.`,
    );
  }
  if (rc !== undefined && rc >= 500) {
    return result(
      'rejected',
      rc === 503 ? 'temporary' : 'permanent',
      `${where(ctx)} rejected the message (${rc}): read the reply; it will not be retried.`,
    );
  }

  // Then the transport's own errors.
  if (err.codes.some((c) => CERT_ERRORS.has(c)) || /self[- ]signed|unable to verify|certificate/i.test(message)) {
    return result(
      'tls_untrusted',
      'temporary',
      `The TLS certificate of ${where(ctx)} is not trusted (self-signed, private CA, expired or wrong host name): add the CA to NODE_EXTRA_CA_CERTS and restart mailgate, and make sure the host name matches the certificate.`,
    );
  }
  if (
    /wrong version number|packet length too long|unknown protocol|EPROTO/i.test(message) ||
    has('EPROTO') ||
    has('ERR_SSL_WRONG_VERSION_NUMBER')
  ) {
    return result(
      'tls_protocol_mismatch',
      'temporary',
      `TLS could not start with ${where(ctx)}: the port probably expects ${ctx.protocol === 'smtps' ? 'plain SMTP with STARTTLS (use protocol smtp with TLS ticked)' : 'implicit TLS (use protocol smtps)'}.`,
    );
  }
  if (has('ECONNREFUSED')) {
    return result(
      'connection_refused',
      'temporary',
      `Nothing accepts connections at ${where(ctx)}: check the host name and port (25, 465 for smtps, 587 for submission) and that the server runs.`,
    );
  }
  if (has('EHOSTUNREACH') || has('ENETUNREACH') || has('EADDRNOTAVAIL')) {
    return result(
      'host_unreachable',
      'temporary',
      `${where(ctx)} cannot be reached from mailgate's network: check the host, routing and firewalls (outbound SMTP is often blocked by cloud providers).`,
    );
  }
  if (err.stage === 'EDNS' || has('ENOTFOUND') || has('EAI_AGAIN') || has('ENODATA')) {
    return result(
      'dns_failed',
      'temporary',
      `The host name ${ctx.host ?? ''} could not be resolved: check its spelling and mailgate's DNS.`.replace(
        '  ',
        ' ',
      ),
    );
  }
  if (err.stage === 'ETIMEDOUT' || has('ETIMEDOUT')) {
    if (err.timeout === 'greeting' || (ctx.noGreeting && err.timeout !== 'connect')) {
      return result(
        'greeting_timeout',
        'temporary',
        `${where(ctx)} accepted the connection but never sent its SMTP greeting: the port may expect ${ctx.protocol === 'smtps' ? 'plain SMTP' : 'implicit TLS (protocol smtps)'}, or the server is overloaded. Raise the timeout if it is just slow.`,
      );
    }
    return result(
      'timeout',
      'temporary',
      `${where(ctx)} did not answer in time: check that the host and port are reachable (firewalls often drop SMTP silently) or raise the timeout.`,
    );
  }
  if (err.stage === 'ECONNECTION' || has('ECONNRESET') || has('EPIPE')) {
    return result(
      'connection_dropped',
      'temporary',
      `${where(ctx)} closed the connection unexpectedly: it may limit connections or need TLS; mailgate retries.`,
    );
  }
  if (err.stage === 'ETLS') {
    return result(
      'tls_failed',
      'temporary',
      `The TLS handshake with ${where(ctx)} failed: check the protocol (smtp + TLS vs smtps) and the server certificate.`,
    );
  }
  return result(
    'send_failed',
    'temporary',
    'Sending failed for a reason mailgate does not recognize; read the message and the transcript (Test connection).',
  );
}
