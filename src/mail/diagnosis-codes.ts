/**
 * Every code a mail diagnosis can carry (src/mail/diagnose.ts, diagnose-api.ts, the queue's outcomes). The
 * diagnosers only accept codes from this table, so pages can translate hints by code and a test can check
 * that each one has a text in every language.
 */
export const DIAGNOSIS_CODES = [
  'egress_denied',
  'not_smtp',
  'oauth_not_authorized',
  'oauth_needs_reauth',
  'oauth_token_unavailable',
  'smtp_auth_disabled',
  'basic_auth_retired',
  'send_as_denied',
  'app_password_required',
  'must_starttls',
  'auth_failed',
  'auth_required',
  'relay_denied',
  'starttls_unavailable',
  'auth_not_possible',
  'server_busy',
  'temporary_rejection',
  'rejected',
  'tls_untrusted',
  'tls_protocol_mismatch',
  'connection_refused',
  'host_unreachable',
  'dns_failed',
  'greeting_timeout',
  'timeout',
  'connection_dropped',
  'tls_failed',
  'send_failed',
  'api_unreachable',
  'api_daily_limit',
  'api_throttled',
  'api_message_too_large',
  'api_token_rejected',
  'api_permission_missing',
  'api_mailbox_not_found',
  'api_unavailable',
  'api_rejected',
  'server_deleted',
] as const;

export type DiagnosisCode = (typeof DIAGNOSIS_CODES)[number];
