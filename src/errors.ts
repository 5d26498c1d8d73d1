/**
 * Every error mailgate reports on purpose, in one table: code → HTTP status and a default message.
 * `expose` says whether the message may be shown to the caller; unknown errors never are.
 *
 * The one error protocol: a failure a caller must act on is an `AppError` with a code from this table (and a
 * `hint` an operator can follow where there is one); an outcome a caller expects (a refused callback, a lost
 * lock) is a typed result instead. Errors of libraries and sockets are translated once, in the module that
 * owns the library, into an AppError whose subclass only adds typed, read-only facts (an SMTP reply, a
 * provider's error code): callers branch on `code` and those fields, never on a library's error shape.
 */
export const ERROR_CODES = {
  validation_failed: { status: 400, message: 'The request is not valid.' },
  bad_request: { status: 400, message: 'The request cannot be processed.' },
  unauthenticated: { status: 401, message: 'Authentication is required.' },
  invalid_credentials: { status: 401, message: 'Wrong email or password.' },
  invalid_api_key: { status: 401, message: 'The API key is missing, malformed, revoked or unknown.' },
  forbidden: { status: 403, message: 'You do not have permission to do this.' },
  insufficient_scope: { status: 403, message: 'The API key lacks the scope this endpoint needs.' },
  csrf_failed: {
    status: 403,
    message: 'The form has expired or did not come from mailgate. Reload the page and try again.',
  },
  egress_denied: {
    status: 403,
    message: 'The endpoint is on a network mailgate may not reach (see MAILGATE_EGRESS_ALLOW).',
  },
  not_found: { status: 404, message: 'Not found.' },
  conflict: { status: 409, message: 'The resource was changed by someone else; reload and try again.' },
  already_exists: { status: 409, message: 'A resource with that identity already exists.' },
  read_only: { status: 409, message: 'This resource is defined outside mailgate and cannot be changed here.' },
  payload_too_large: { status: 413, message: 'The request body is too large.' },
  message_too_large: { status: 413, message: 'The message is larger than MAILGATE_MAX_MESSAGE_BYTES allows.' },
  unsupported_media_type: { status: 415, message: 'Send a JSON body with Content-Type: application/json.' },
  rate_limited: { status: 429, message: 'Too many attempts; wait and try again.' },
  queue_full: { status: 429, message: 'The mail queue is full; try again later.' },
  sending_disabled: { status: 409, message: 'Outgoing mail is disabled.' },
  oauth_failed: { status: 400, message: 'The authorization did not complete.' },
  provider_unavailable: { status: 502, message: 'The identity provider did not answer correctly.' },
  reauth_required: {
    status: 409,
    message: 'The mailbox must be authorized again: press Re-authorize on the SMTP server page.',
  },
  store_unavailable: { status: 503, message: 'The store is not reachable.' },
  encryption_keys_missing: { status: 409, message: 'Stored values need encryption keys that are not configured.' },
  connection_failed: { status: 502, message: 'The remote server could not be reached.' },
  mail_delivery_failed: { status: 502, message: 'The SMTP server could not be reached or did not accept the message.' },
  crypto_failed: { status: 500, message: 'A sealed value could not be opened.' },
  internal: { status: 500, message: 'Something went wrong on our side.' },
} as const satisfies Record<string, { status: number; message: string }>;

export type ErrorCode = keyof typeof ERROR_CODES;

export interface ErrorDetail {
  /** Field path, e.g. `to[2]` or `port`; empty for errors about the whole request. */
  field: string;
  message: string;
}

export interface AppErrorOptions {
  message?: string;
  details?: ErrorDetail[];
  cause?: unknown;
  /** Whether `message` may be shown to the caller; defaults to true for 4xx, false for 5xx. */
  expose?: boolean;
  /** Extra headers for the response, e.g. Retry-After. */
  headers?: Record<string, string>;
  /** One line an operator can act on (which setting to change); shown with the message. */
  hint?: string | undefined;
}

export class AppError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly expose: boolean;
  readonly details: ErrorDetail[];
  readonly headers: Record<string, string>;
  readonly hint: string | undefined;

  constructor(code: ErrorCode, options: AppErrorOptions = {}) {
    const entry = ERROR_CODES[code];
    super(options.message ?? entry.message, { cause: options.cause });
    this.name = 'AppError';
    this.code = code;
    this.status = entry.status;
    this.expose = options.expose ?? entry.status < 500;
    this.details = options.details ?? [];
    this.headers = options.headers ?? {};
    this.hint = options.hint;
  }
}

export function isAppError(err: unknown): err is AppError {
  return err instanceof AppError;
}

/** The first AppError with `code` along an error's cause chain (libraries wrap what our callbacks threw). */
export function findAppError(err: unknown, code: ErrorCode): AppError | undefined {
  let current: unknown = err;
  for (let depth = 0; depth < 5 && typeof current === 'object' && current !== null; depth++) {
    if (isAppError(current) && current.code === code) return current;
    current = (current as { cause?: unknown }).cause;
  }
  return undefined;
}

/** The JSON error body of the API: `{"error": {"code", "message", "details"}}`. */
export function errorBody(err: AppError): { error: { code: ErrorCode; message: string; details: ErrorDetail[] } } {
  return {
    error: {
      code: err.code,
      message: err.expose ? err.message : ERROR_CODES[err.code].message,
      details: err.expose ? err.details : [],
    },
  };
}
