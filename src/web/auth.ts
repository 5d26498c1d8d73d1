import type { RequestHandler, Response } from 'express';
import type { Actor, ApiScope, Role } from '../admin/types.js';
import { AppError } from '../errors.js';

/**
 * Guards for routes. `page(role)` protects browser pages and form posts (session cookie; CSRF is checked
 * for every state-changing browser request before routes run); `api(scope)` protects /api/v1 (Bearer API key).
 * Both put the authenticated Actor in res.locals.actor. `admin` pages admit sysadmins too.
 */
export interface AuthMiddleware {
  page(role: Role): RequestHandler;
  api(scope: ApiScope): RequestHandler;
}

export function actorOf(res: Response): Actor {
  const actor = (res.locals as { actor?: Actor }).actor;
  if (!actor) throw new AppError('unauthenticated');
  return actor;
}
