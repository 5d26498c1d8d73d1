/**
 * Errors of the narrow SMTP client in nodemailer's shape (`code` for the stage, `response`, `responseCode`,
 * `command`, `timeoutType`), so toMailTransportFailure and diagnose() read them exactly as they read nodemailer's.
 */

export interface WireError extends Error {
  code?: string;
  originalCode?: string;
  response?: string;
  responseCode?: number;
  command?: string;
  timeoutType?: string;
  recipient?: string;
  rejected?: string[];
  rejectedErrors?: WireError[];
}

/** nodemailer's _formatError: the stage code on the error, the reply appended to the message. */
export function smtpError(
  message: string | Error,
  code: string,
  response?: string | false,
  command?: string,
): WireError {
  const err: WireError = typeof message === 'string' ? new Error(message) : message;
  if (err.code && err.code !== code && !err.originalCode) err.originalCode = err.code;
  err.code = code;
  if (response) {
    err.response = response;
    err.message += `: ${response}`;
    const responseCode = Number(/^\d+/.exec(response)?.[0] ?? 0);
    if (responseCode) err.responseCode = responseCode;
  }
  if (command) err.command = command;
  return err;
}

export function timeoutError(message: string, timeoutType: string, command = 'CONN'): WireError {
  return smtpError(Object.assign(new Error(message), { timeoutType }), 'ETIMEDOUT', false, command);
}

/** The failures nodemailer's pool treats as the connection ending rather than the message being refused. */
export function isConnectionLoss(err: WireError): boolean {
  return err.responseCode === 421 || err.code === 'ECONNECTION' || err.code === 'ESOCKET' || err.code === 'ETIMEDOUT';
}
