import type { ErrorRequestHandler, Request, RequestHandler } from 'express';
import type { Eta } from 'eta';
import { AppError, ERROR_CODES, errorBody, isAppError } from '../errors.js';
import type { Logger } from '../log.js';
import { StoreUnavailableError, VersionConflictError } from '../store/store.js';
import { isApiRequest } from './api-path.js';
import type { Translate } from '../i18n/i18n.js';
import { translatorFor } from './language.js';
import { renderPage } from './render.js';

/**
 * One error handler for the whole app: JSON in the API's error shape for API clients, an HTML page for
 * browsers. Unknown errors are logged with their stack and answered with a generic message: no stack trace,
 * no internal message, no secret ever reaches the client.
 */

export function wantsJson(req: Request): boolean {
  if (isApiRequest(req)) return true;
  return req.accepts(['html', 'json']) === 'json';
}

/** Maps errors from libraries and the store onto the error table. */
export function toAppError(err: unknown): AppError {
  if (isAppError(err)) return err;
  if (err instanceof VersionConflictError) return new AppError('conflict', { cause: err });
  if (err instanceof StoreUnavailableError) return new AppError('store_unavailable', { cause: err });
  const e = err as { type?: string; status?: number; statusCode?: number; expose?: boolean };
  // body-parser and friends (http-errors): their types are stable and their messages safe to map.
  if (e.type === 'entity.too.large') return new AppError('payload_too_large', { cause: err });
  if (e.type === 'entity.parse.failed')
    return new AppError('bad_request', { message: 'The body is not valid JSON.', cause: err });
  if (e.type === 'charset.unsupported' || e.type === 'encoding.unsupported')
    return new AppError('unsupported_media_type', { cause: err });
  if (e.type === 'parameters.too.many')
    return new AppError('payload_too_large', { message: 'Too many form fields.', cause: err });
  return new AppError('internal', { cause: err });
}

/** What the API answers for an error: its status, its extra headers and its JSON body. */
export interface ApiErrorAnswer {
  status: number;
  headers: Record<string, string>;
  json: ReturnType<typeof errorBody>;
}

/**
 * The one rendering of an error for the API and the pages: logged (5xx with its cause and stack, the rest as a
 * refusal), mapped onto the error table, its default message in the reader's language (cookie, then
 * Accept-Language). Every path that answers an error goes through here.
 */
export function answerForError(
  log: Logger,
  err: unknown,
  req: Pick<Request, 'headers'>,
  where: { method: string; path: string },
): ApiErrorAnswer & { t: Translate } {
  const appError = toAppError(err);
  if (appError.status >= 500) log.error({ err: appError.cause ?? appError, ...where }, 'request failed');
  else log.debug({ code: appError.code, ...where }, 'request refused');
  const t = translatorFor(req);
  const json = errorBody(appError);
  // Codes stay English for programs; the default message follows the reader's language.
  if (json.error.message === ERROR_CODES[json.error.code].message) json.error.message = t(`error.${json.error.code}`);
  return { status: appError.status, headers: appError.headers, json, t };
}

export function createErrorHandler(log: Logger, eta: Eta): ErrorRequestHandler {
  return (err: unknown, req, res, _next) => {
    const answer = answerForError(log, err, req, { method: req.method, path: req.path });
    if (res.headersSent) {
      res.end();
      return;
    }
    for (const [name, value] of Object.entries(answer.headers)) res.setHeader(name, value);
    if (wantsJson(req)) {
      res.status(answer.status).json(answer.json);
      return;
    }
    const body = answer.json.error;
    renderPage(
      res,
      eta,
      'error',
      {
        title: answer.t('error.title'),
        status: answer.status,
        code: body.code,
        message: body.message,
        details: body.details,
      },
      answer.status,
    );
  };
}

export const notFound: RequestHandler = (req, _res, next) => {
  next(new AppError('not_found', { message: `No page or endpoint at ${req.method} ${req.path}.` }));
};
