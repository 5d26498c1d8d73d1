import { AppError, findAppError, type ErrorCode } from '../errors.js';
import { ConnectFailure } from '../net/connect.js';

/**
 * Why an SMTP attempt failed, as one shape, whatever produced it: nodemailer (an SMTP reply, its own codes),
 * a socket, TLS or DNS, the egress policy, or the token service. The transport translates every failure into
 * this once; diagnose() and the queue read only these fields.
 *
 * - `egress_denied`: the policy refused the address before any byte was sent (`hint` says what to change).
 * - `token_needs_reauth` / `token_unavailable`: no access token (the grant is dead / the provider is down).
 * - `smtp`: everything on the wire: replies, socket, TLS, DNS and timeouts.
 * - `api`: an HTTP answer of Microsoft Graph or the Gmail API (`httpStatus`, `providerCode`, `retryAt`).
 */
export type MailFailureKind = 'egress_denied' | 'token_needs_reauth' | 'token_unavailable' | 'smtp' | 'api';

/** A recipient the server refused, as nodemailer reports it. */
export interface RecipientRejection {
  recipient?: string;
  responseCode?: number;
  response?: string;
}

export interface MailFailureFacts {
  kind: MailFailureKind;
  message: string;
  hint?: string | undefined;
  /** nodemailer's code for the stage that failed: EAUTH, EENVELOPE, EMESSAGE, ECONNECTION, ETLS, EDNS, EPROTOCOL… */
  stage?: string | undefined;
  /** Every code found along the error and its causes: nodemailer's and the system's (ECONNREFUSED, CERT_HAS_EXPIRED…). */
  codes?: string[];
  /** The server's reply, when there was one. */
  response?: string | undefined;
  responseCode?: number | undefined;
  /** The SMTP command the reply answered (CONN, EHLO, STARTTLS, AUTH, MAIL FROM…). */
  command?: string | undefined;
  /** Which wait ran out, when one did. */
  timeout?: 'connect' | 'greeting' | 'upgrade' | 'socket' | undefined;
  rejectedErrors?: RecipientRejection[];
  /** `api` only: which API answered, its HTTP status and error code (Graph `error.code`, Gmail `reason`). */
  api?: 'graph' | 'gmail_api' | undefined;
  httpStatus?: number | undefined;
  providerCode?: string | undefined;
  /** When the provider said to try again (Retry-After, a daily quota's next window), ms since epoch. */
  retryAt?: number | undefined;
}

const CODE_OF: Record<MailFailureKind, ErrorCode> = {
  egress_denied: 'egress_denied',
  token_needs_reauth: 'reauth_required',
  token_unavailable: 'provider_unavailable',
  smtp: 'mail_delivery_failed',
  api: 'mail_delivery_failed',
};

export class MailTransportFailure extends AppError {
  readonly kind: MailFailureKind;
  readonly stage: string | undefined;
  readonly codes: readonly string[];
  readonly response: string | undefined;
  readonly responseCode: number | undefined;
  readonly command: string | undefined;
  readonly timeout: MailFailureFacts['timeout'];
  readonly rejectedErrors: readonly RecipientRejection[];
  readonly api: MailFailureFacts['api'];
  readonly httpStatus: number | undefined;
  readonly providerCode: string | undefined;
  readonly retryAt: number | undefined;

  constructor(facts: MailFailureFacts, cause?: unknown) {
    super(CODE_OF[facts.kind], { message: facts.message, hint: facts.hint, cause });
    this.kind = facts.kind;
    this.stage = facts.stage;
    this.codes = facts.codes ?? [];
    this.response = facts.response;
    this.responseCode = facts.responseCode;
    this.command = facts.command;
    this.timeout = facts.timeout;
    this.rejectedErrors = facts.rejectedErrors ?? [];
    this.api = facts.api;
    this.httpStatus = facts.httpStatus;
    this.providerCode = facts.providerCode;
    this.retryAt = facts.retryAt;
  }
}

/** The parts of a nodemailer (or socket) error that are read; everything is optional. */
interface LibraryErrorShape {
  message?: unknown;
  code?: unknown;
  originalCode?: unknown;
  response?: unknown;
  responseCode?: unknown;
  command?: unknown;
  timeoutType?: unknown;
  rejectedErrors?: unknown;
  cause?: unknown;
}

const TIMEOUTS: Record<string, MailFailureFacts['timeout']> = {
  CONNECT_TIMEOUT: 'connect',
  GREETING_TIMEOUT: 'greeting',
  UPGRADE_TIMEOUT: 'upgrade',
  SOCKET_TIMEOUT: 'socket',
};

const text = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);

function chainOf(error: unknown): LibraryErrorShape[] {
  const chain: LibraryErrorShape[] = [];
  for (
    let e = error, depth = 0;
    typeof e === 'object' && e !== null && depth < 5;
    e = (e as LibraryErrorShape).cause, depth++
  ) {
    chain.push(e);
  }
  return chain;
}

function rejectionsOf(value: unknown): RecipientRejection[] {
  if (!Array.isArray(value)) return [];
  return value.map((r: LibraryErrorShape & { recipient?: unknown }) => ({
    ...(text(r.recipient) ? { recipient: text(r.recipient) } : {}),
    ...(typeof r.responseCode === 'number' ? { responseCode: r.responseCode } : {}),
    ...(text(r.response) ? { response: text(r.response) } : {}),
  }));
}

/**
 * Translates what a send or a verify failed with into a MailTransportFailure. Our own failures travel through
 * nodemailer as the cause of a plain Error (the library stamps its codes on what it is handed), so they are
 * looked for along the cause chain first.
 */
export function toMailTransportFailure(error: unknown): MailTransportFailure {
  if (error instanceof MailTransportFailure) return error;
  const chain = chainOf(error);
  const ours = chain.find((e): e is MailTransportFailure => e instanceof MailTransportFailure);
  if (ours) return ours;
  const denied = findAppError(error, 'egress_denied');
  if (denied) {
    return new MailTransportFailure({ kind: 'egress_denied', message: denied.message, hint: denied.hint }, denied);
  }
  const top = chain[0] ?? {};
  const codes: string[] = [];
  let timeout = TIMEOUTS[text(top.timeoutType) ?? ''];
  for (const e of chain) {
    if (e instanceof ConnectFailure) {
      if (e.systemCode) codes.push(e.systemCode);
      timeout ??= e.timeout;
      continue;
    }
    for (const c of [e.code, e.originalCode]) if (typeof c === 'string') codes.push(c);
  }
  const message = text(top.message) ?? (chain.length === 0 ? String(error) : undefined) ?? 'unknown error';
  return new MailTransportFailure(
    {
      kind: 'smtp',
      message,
      stage: top instanceof AppError ? undefined : text(top.code),
      codes,
      response: text(top.response),
      responseCode: typeof top.responseCode === 'number' ? top.responseCode : undefined,
      command: text(top.command),
      timeout,
      rejectedErrors: rejectionsOf(top.rejectedErrors),
    },
    error,
  );
}

/** What the transport hands nodemailer for a failure of ours: a plain Error the library may stamp, ours as its cause. */
export function forLibrary(failure: AppError): Error {
  return new Error(failure.message, { cause: failure });
}

/** No credentials for a server: its grant is dead (`token_needs_reauth`) or the provider gave no token now. */
export function credentialsFailure(
  message: string,
  kind: 'token_needs_reauth' | 'token_unavailable',
  cause?: unknown,
): MailTransportFailure {
  return new MailTransportFailure({ kind, message }, cause);
}

/** The token service says `reauth_required` when the grant is dead; anything else may pass. */
export function tokenProblemOf(err: unknown): 'token_needs_reauth' | 'token_unavailable' {
  return findAppError(err, 'reauth_required') ? 'token_needs_reauth' : 'token_unavailable';
}
