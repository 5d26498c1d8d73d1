import { backoffDelay, type Backoff } from '../../backoff.js';
import { diagnose, type DiagnoseContext, type Diagnosis } from '../diagnose.js';
import type { SendResult } from '../transport.js';
import type { DiagnosisCode } from '../diagnosis-codes.js';
import { errorOf, type HeldReason, type MessageDoc, type RecipientResult } from './model.js';

/**
 * What one delivery of a message comes to, as a pure function of what happened: no store, no clock, no
 * randomness of its own, so every rule below is checked by a table of cases (delivery-outcome.test.ts).
 *
 *   sent                        accepted by the server → sent, per-recipient results, the body dropped
 *   temporary failure           (4xx, network, timeout) → deferred with backoff (or the provider's Retry-After
 *                               when later); failed after maxAttempts
 *   rate limited (API 429/quota) → deferred until the provider's time, no attempt counted
 *   permanent failure (5xx)     → failed at once, with the reply
 *   credentials rejected        → held (server_paused), the server to be paused, no attempt counted
 *   server deleted              → failed; outgoing mail off or server paused → held, nothing tried
 */

export type DeliveryAttempt =
  | { kind: 'accepted'; result: SendResult }
  | { kind: 'failed'; error: unknown; server: DiagnoseContext }
  | { kind: 'server_deleted' }
  | { kind: 'sending_disabled' }
  | { kind: 'server_paused' };

export type NextState =
  | { status: 'sent' | 'failed' | 'deferred'; value: MessageDoc }
  | {
      status: 'held';
      reason: HeldReason;
      value: MessageDoc;
      pauseServer?: { reason: string; code: string };
      diagnosis?: Diagnosis;
    };

export interface OutcomeOptions {
  maxAttempts: number;
  backoff: Backoff;
  /** When the attempt ended. */
  now: number;
  random?: () => number;
}

interface RejectedError {
  recipient?: string;
  responseCode?: number;
  response?: string;
}

function rejected(
  r: RecipientResult,
  reply: { responseCode?: number | undefined; response?: string | undefined } | undefined,
): RecipientResult {
  return {
    address: r.address,
    kind: r.kind,
    status: 'rejected',
    ...(reply?.responseCode ? { responseCode: reply.responseCode } : {}),
    ...(reply?.response ? { response: reply.response } : {}),
  };
}

function acceptedRecipients(m: MessageDoc, result: SendResult): RecipientResult[] {
  const accepted = new Set(result.accepted.map((a) => a.toLowerCase()));
  return m.recipients.map((r): RecipientResult => {
    if (accepted.has(r.address.toLowerCase())) return { address: r.address, kind: r.kind, status: 'accepted' };
    return rejected(
      r,
      result.rejected.find((x) => x.address.toLowerCase() === r.address.toLowerCase()),
    );
  });
}

function recipientsAfterError(m: MessageDoc, error: unknown): RecipientResult[] {
  const errors = (error as { rejectedErrors?: RejectedError[] } | null)?.rejectedErrors ?? [];
  return m.recipients.map((r) => {
    const e = errors.find((x) => x.recipient?.toLowerCase() === r.address.toLowerCase());
    return e ? rejected(r, e) : r;
  });
}

/** `message` is the message as stored when its delivery was claimed. */
export function deliveryOutcome(message: MessageDoc, attempt: DeliveryAttempt, options: OutcomeOptions): NextState {
  const { now } = options;
  const held = (reason: HeldReason, value: MessageDoc) => ({
    status: 'held' as const,
    reason,
    value: { ...value, status: 'held' as const, heldReason: reason, nextAttemptAt: null, updatedAt: now },
  });
  if (attempt.kind === 'server_deleted') {
    const d: Diagnosis = {
      code: 'server_deleted' satisfies DiagnosisCode,
      class: 'permanent',
      message: `SMTP server ${message.serverId} no longer exists`,
      hint: 'Resend the message to another server, or recreate the server.',
    };
    return {
      status: 'failed',
      value: { ...message, status: 'failed', lastError: errorOf(d, now), updatedAt: now, nextAttemptAt: null },
    };
  }
  if (attempt.kind === 'sending_disabled' || attempt.kind === 'server_paused') return held(attempt.kind, message);
  const attempts = message.attempts + 1;
  const tried: MessageDoc = { ...message, heldReason: null, attempts, updatedAt: now };
  if (attempt.kind === 'accepted') {
    // The body has done its job: it is not kept at rest for the retention period (nothing shows or resends it).
    const { text: _text, html: _html, ...delivered } = message.input;
    const recipients = acceptedRecipients(message, attempt.result);
    const { mime: _mime, ...kept } = tried;
    return {
      status: 'sent',
      value: {
        ...kept,
        input: delivered,
        status: 'sent',
        recipients,
        sentAt: now,
        nextAttemptAt: null,
        smtpResponse: attempt.result.response.slice(0, 500),
      },
    };
  }
  const d = diagnose(attempt.error, attempt.server);
  if (d.class === 'credentials') {
    // The attempt is not the message's fault: it keeps its attempts for when the server is fixed.
    return {
      ...held('server_paused', { ...tried, attempts: message.attempts, lastError: errorOf(d, now) }),
      pauseServer: { reason: d.hint, code: d.code },
      diagnosis: d,
    };
  }
  const recipients = recipientsAfterError(message, attempt.error);
  if (d.throttled) {
    // A provider's rate limit or quota is not the message's fault: it keeps its attempts and waits for the time given.
    const nextAttemptAt = d.retryAt ?? now + backoffDelay(attempts, options.backoff, options.random);
    return {
      status: 'deferred',
      value: { ...tried, attempts: message.attempts, status: 'deferred', lastError: errorOf(d, now), nextAttemptAt },
    };
  }
  if (d.class === 'permanent')
    return {
      status: 'failed',
      value: { ...tried, status: 'failed', recipients, lastError: errorOf(d, now), nextAttemptAt: null },
    };
  if (attempts >= options.maxAttempts) {
    return {
      status: 'failed',
      value: {
        ...tried,
        status: 'failed',
        recipients,
        lastError: errorOf(d, now, `gave up after ${attempts} attempts: ${d.message}`),
        nextAttemptAt: null,
      },
    };
  }
  // A provider's Retry-After (503 with a time) wins over the backoff when it is later.
  const nextAttemptAt = Math.max(now + backoffDelay(attempts, options.backoff, options.random), d.retryAt ?? 0);
  return {
    status: 'deferred',
    value: { ...tried, status: 'deferred', recipients, lastError: errorOf(d, now), nextAttemptAt },
  };
}
