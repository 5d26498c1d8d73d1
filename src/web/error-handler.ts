import type { ErrorRequestHandler, Request, RequestHandler } from 'express';
import type { Eta } from 'eta';
import { AppError, ERROR_CODES, errorBody, isAppError } from '../errors.js';
import type { Logger } from '../log.js';
import { StoreUnavailableError, VersionConflictError } from '../store/store.js';
import { isApiRequest } from './api-path.js';
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

export function createErrorHandler(log: Logger, eta: Eta): ErrorRequestHandler {
  return (err: unknown, req, res, _next) => {
    const appError = toAppError(err);
    if (appError.status >= 500)
      log.error({ err: appError.cause ?? appError, method: req.method, path: req.path }, 'request failed');
    else log.debug({ code: appError.code, method: req.method, path: req.path }, 'request refused');
    if (res.headersSent) {
      res.end();
      return;
    }
    for (const [name, value] of Object.entries(appError.headers)) res.setHeader(name, value);
    const t = translatorFor(req);
    const json = errorBody(appError);
    // Codes stay English for programs; the default message follows the reader's language.
    if (json.error.message === ERROR_CODES[json.error.code].message) json.error.message = t(`error.${json.error.code}`);
    if (wantsJson(req)) {
      res.status(appError.status).json(json);
      return;
    }
    const body = json.error;
    renderPage(
      res,
      eta,
      'error',
      {
        title: t('error.title'),
        status: appError.status,
        code: body.code,
        message: body.message,
        details: body.details,
      },
      appError.status,
    );
  };
}

export const notFound: RequestHandler = (req, _res, next) => {
  next(new AppError('not_found', { message: `No page or endpoint at ${req.method} ${req.path}.` }));
};
