/**
 * What an HTTP mail API answered, read into one shape: the provider's error code, its message and, when it
 * asked to wait, until when. Graph puts `{error: {code, message}}` and a Retry-After header on 429/503;
 * the Gmail API puts `{error: {code, message, errors: [{reason}]}}`, with the quota named in `reason`.
 */

export interface ApiAnswer {
  status: number;
  headers: Headers;
  body: string;
}

export interface ApiError {
  providerCode?: string | undefined;
  message: string;
  /** Until when the provider asked not to be called for this mailbox (ms since epoch). */
  retryAt?: number | undefined;
  /** A rate limit or quota, not a fault: the attempt does not count against the message. */
  throttled: boolean;
}

/** When nothing says how long to wait after a rate limit: long enough not to hammer, short enough to recover. */
export const DEFAULT_THROTTLE_MS = 30_000;
/** Retry-After values beyond this are taken as this (a confused header must not park mail for days). */
const MAX_RETRY_AFTER_MS = 24 * 3_600_000;

/** Retry-After as seconds or an HTTP date → ms since epoch, or undefined. */
export function retryAfterOf(headers: Headers, now: number): number | undefined {
  const value = headers.get('retry-after')?.trim();
  if (!value) return undefined;
  const ms = /^\d+$/.test(value) ? Number(value) * 1000 : Date.parse(value) - now;
  if (!Number.isFinite(ms)) return undefined;
  return now + Math.min(MAX_RETRY_AFTER_MS, Math.max(0, ms));
}

function json(body: string): Record<string, unknown> | null {
  try {
    const v: unknown = JSON.parse(body);
    return typeof v === 'object' && v !== null ? (v as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);

/** Microsoft Graph: `{error: {code, message}}`; 429 always comes with Retry-After. */
export function graphError(answer: ApiAnswer, now: number): ApiError {
  const error = json(answer.body)?.error as Record<string, unknown> | undefined;
  const throttled = answer.status === 429;
  const retryAt = retryAfterOf(answer.headers, now) ?? (throttled ? now + DEFAULT_THROTTLE_MS : undefined);
  return {
    providerCode: str(error?.code),
    message: str(error?.message) ?? (answer.body.slice(0, 200) || `HTTP ${answer.status}`),
    retryAt,
    throttled,
  };
}

const GMAIL_QUOTA_REASONS = new Set([
  'rateLimitExceeded',
  'userRateLimitExceeded',
  'dailyLimitExceeded',
  'quotaExceeded',
]);

/**
 * The next daily window of Google's quotas: they reset at midnight Pacific Time. Sending limits of a Workspace
 * mailbox are a rolling 24 hours instead; waiting until midnight PT and trying once is the cheaper guess, and
 * a mailbox still over its limit then answers the same way and waits again.
 */
export function nextPacificMidnight(now: number): number {
  const parts = new Intl.DateTimeFormat('en-US', {
    timeZone: 'America/Los_Angeles',
    hour12: false,
    hour: '2-digit',
    minute: '2-digit',
    second: '2-digit',
  }).formatToParts(new Date(now));
  const get = (type: string) => Number(parts.find((p) => p.type === type)?.value ?? 0);
  // Some engines say "24" for midnight with hour12: false.
  const elapsed = (((get('hour') % 24) * 60 + get('minute')) * 60 + get('second')) * 1000 + (now % 1000);
  return now - elapsed + 24 * 3_600_000;
}

/** The Gmail API: the quota is in `error.errors[0].reason`; 429 and quota 403s are rate limits. */
export function gmailError(answer: ApiAnswer, now: number): ApiError {
  const error = json(answer.body)?.error as Record<string, unknown> | undefined;
  const first = Array.isArray(error?.errors) ? (error.errors[0] as Record<string, unknown> | undefined) : undefined;
  const reason = str(first?.reason) ?? str(error?.status);
  const quota = reason !== undefined && GMAIL_QUOTA_REASONS.has(reason);
  const throttled = answer.status === 429 || quota;
  let retryAt = retryAfterOf(answer.headers, now);
  if (reason === 'dailyLimitExceeded') retryAt = Math.max(retryAt ?? 0, nextPacificMidnight(now));
  else if (throttled) retryAt ??= now + DEFAULT_THROTTLE_MS;
  return {
    providerCode: reason,
    message: str(error?.message) ?? (answer.body.slice(0, 200) || `HTTP ${answer.status}`),
    retryAt,
    throttled,
  };
}
