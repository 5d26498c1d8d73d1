import type { Request } from 'express';

/**
 * Whether a request is for the JSON API. Express matches routes without regard to case, so `/API/v1/...`
 * reaches the API's handlers: the session, CSRF and error layers must recognise it by the same rule, or such a
 * request would get browser treatment (a session, a CSRF check) on the way to an API handler.
 */
const API_PATH = /^\/api(\/|$)/i;

export function isApiRequest(req: Pick<Request, 'path'>): boolean {
  return API_PATH.test(req.path);
}
