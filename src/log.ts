import { pino, type Logger, type LoggerOptions } from 'pino';

export type { Logger };

/**
 * JSON logs with secrets removed. Redaction is by key name (anything that looks like a password, secret,
 * token, key, cookie or authorization code) at any depth, and by value shape (API keys, bearer tokens,
 * sealed values), so a secret that ends up in an unexpected field is still masked.
 */

const SECRET_KEY =
  /pass(word)?|secret|token|authorization|cookie|^code$|code_?verifier|api_?key|private|credential|^auth$|^pass$|sealed/i;
const SECRET_VALUE = [
  /mgk_[A-Za-z0-9_-]{20,}/g, // mailgate API keys
  /\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]+/gi,
  /\bmg1\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+/g, // sealed values
  // The user part is bounded (an address is at most 254 characters): unbounded, every "user=" of a long
  // line without ^A would scan to its end, quadratic time on input an attacker can shape (paths, replies).
  // eslint-disable-next-line no-control-regex -- XOAUTH2 separates its fields with ^A
  /\buser=[^\x01]{0,320}\x01auth=Bearer [^\x01]*\x01\x01/g, // decoded XOAUTH2 initial response
];
export const REDACTED = '[redacted]';

export function redactString(value: string): string {
  let out = value;
  for (const pattern of SECRET_VALUE) out = out.replace(pattern, REDACTED);
  return out;
}

/**
 * `code` names both an OAuth authorization code (a secret) and an error code (`auth_failed`, `ETIMEDOUT`, 535),
 * which is what a reader of the audit log or the logs needs. Only the shapes of error codes are kept: short
 * lowercase words joined by underscores, errno-style names, or a three-digit reply code. Authorization codes are
 * long random strings with mixed case, digits or punctuation and never take these shapes.
 */
const ERROR_CODE = /^(?:[a-z]{2,20}(?:_[a-z]{2,20}){0,5}|E[A-Z]{2,20}|ERR(?:_[A-Z]{2,20}){1,6}|E_[A-Z]{2,20})$/;

function isErrorCode(key: string, value: unknown): boolean {
  if (key !== 'code') return false;
  if (typeof value === 'number') return Number.isInteger(value) && value >= 100 && value <= 999;
  return typeof value === 'string' && value.length <= 64 && ERROR_CODE.test(value);
}

/** Deep copy of `value` with secrets replaced; cycles and depth are bounded. */
export function redact(value: unknown, depth = 0, seen = new WeakSet<object>()): unknown {
  if (typeof value === 'string') return redactString(value);
  if (value === null || typeof value !== 'object') return value;
  if (depth > 8 || seen.has(value)) return '[…]';
  seen.add(value);
  if (value instanceof Error) return redactError(value, depth, seen);
  if (Array.isArray(value)) return value.map((v) => redact(v, depth + 1, seen));
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    out[k] =
      SECRET_KEY.test(k) && v !== undefined && v !== null && typeof v !== 'boolean' && !isErrorCode(k, v)
        ? REDACTED
        : redact(v, depth + 1, seen);
  }
  return out;
}

/** An error as a plain object: its type, message, code, stack and cause, each masked like any other string. */
function redactError(err: Error, depth: number, seen: WeakSet<object>): Record<string, unknown> {
  const out: Record<string, unknown> = { type: err.name, message: redactString(err.message) };
  const code = (err as { code?: unknown }).code;
  if (code !== undefined) out.code = redact(code, depth + 1, seen);
  // The stack repeats the message on its first line, so it is masked the same way.
  if (typeof err.stack === 'string') out.stack = redactString(err.stack);
  if (err.cause !== undefined) out.cause = redact(err.cause, depth + 1, seen);
  return out;
}

export interface CreateLoggerOptions {
  level: string;
  /** Where lines go; defaults to stdout. Tests pass a stream to read every line. */
  destination?: NodeJS.WritableStream;
  /**
   * Lines for a person instead of JSON: `12:00:01.250 INFO  message  key=value`. Default: when stdout is a
   * terminal and no destination is given. Log collectors (a pipe, a file, a container runtime) get JSON.
   */
  readable?: boolean;
}

const LEVELS: Record<string, { label: string; color: string }> = {
  trace: { label: 'TRACE', color: '90' },
  debug: { label: 'DEBUG', color: '36' },
  info: { label: 'INFO ', color: '32' },
  warn: { label: 'WARN ', color: '33' },
  error: { label: 'ERROR', color: '31' },
  fatal: { label: 'FATAL', color: '35' },
};
const OMIT = new Set(['level', 'time', 'msg', 'service', 'pid', 'hostname', 'err']);

function plain(value: unknown): string {
  if (typeof value !== 'string') return JSON.stringify(value);
  return /^[^\s"=]+$/.test(value) ? value : JSON.stringify(value);
}

/** One JSON log line as a readable line (already redacted: it is formatted after pino wrote it). */
export function readableLine(json: string, color: boolean): string {
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(json) as Record<string, unknown>;
  } catch {
    return json.endsWith('\n') ? json : `${json}\n`;
  }
  const level = LEVELS[String(o.level)] ?? { label: String(o.level).toUpperCase().padEnd(5), color: '0' };
  const time = typeof o.time === 'string' ? o.time.slice(11, 23) : '';
  const paint = (code: string, text: string) => (color ? `\x1b[${code}m${text}\x1b[0m` : text);
  const fields = Object.entries(o)
    .filter(([k]) => !OMIT.has(k))
    .map(([k, v]) => `${paint('90', `${k}=`)}${plain(v)}`)
    .join(' ');
  let out = `${paint('90', time)} ${paint(level.color, level.label)} ${typeof o.msg === 'string' ? o.msg : ''}${fields ? `  ${fields}` : ''}\n`;
  const err = o.err as { type?: string; message?: string; code?: string; stack?: string } | undefined;
  if (err && typeof err === 'object') {
    const stack = typeof err.stack === 'string' ? err.stack : `${err.type ?? 'Error'}: ${err.message ?? ''}`;
    out += `${stack.replace(/^/gm, '    ')}${err.code ? ` [${err.code}]` : ''}\n`;
  }
  return out;
}

function readableStdout(): pino.DestinationStream {
  const color = process.stdout.isTTY && !process.env.NO_COLOR;
  return { write: (line: string) => void process.stdout.write(readableLine(line, color)) };
}

export function createLogger({ level, destination, readable }: CreateLoggerOptions): Logger {
  const options: LoggerOptions = {
    level,
    base: { service: 'mailgate' },
    timestamp: pino.stdTimeFunctions.isoTime,
    // pino's own error serializer runs after formatters.log and would turn the already redacted plain
    // object into {type: 'Object', stack: ''}: the redacted error is final as it is.
    serializers: { err: (err: unknown) => err },
    formatters: {
      level: (label) => ({ level: label }),
      log: (object) => redact(object) as Record<string, unknown>,
    },
    hooks: {
      // The message string is redacted too: interpolated values can carry secrets.
      logMethod(args, method) {
        const safe = args.map((a) => (typeof a === 'string' ? redactString(a) : a)) as Parameters<typeof method>;
        method.apply(this, safe);
      },
    },
  };
  if (destination) return pino(options, destination as pino.DestinationStream);
  return (readable ?? process.stdout.isTTY === true) ? pino(options, readableStdout()) : pino(options);
}
