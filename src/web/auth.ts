import type { RequestHandler, Response } from 'express';
import type { ApiKeyService } from '../admin/api-keys.js';
import type { Actor, ApiScope, Role } from '../admin/types.js';
import { AppError } from '../errors.js';
import { wantsJson } from './error-handler.js';

/**
 * Guards for routes. `page(role)` protects browser pages and form posts (session cookie; CSRF is checked
 * for every state-changing browser request before routes run); `api(scope)` protects /api/v1 (Bearer API key).
 * Both put the authenticated Actor in res.locals.actor. `admin` pages admit sysadmins too.
 */
export interface AuthMiddleware {
  page(role: Role): RequestHandler;
  api(scope: ApiScope): RequestHandler;
  /** The check `api(scope)` makes, for a handler outside express: the Actor of an Authorization header, or throws. */
  apiActor(authorization: string | undefined, scope: ApiScope): Promise<Actor>;
}

export function actorOf(res: Response): Actor {
  const actor = (res.locals as { actor?: Actor }).actor;
  if (!actor) throw new AppError('unauthenticated');
  return actor;
}

const BEARER = /^Bearer +([^\s]+) *$/i;
const API_CHALLENGE = { 'WWW-Authenticate': 'Bearer realm="mailgate"' };

/** Only same-site paths may be a post-login destination (no open redirect). */
export function safeNextPath(next: unknown): string | null {
  if (typeof next !== 'string' || !next.startsWith('/') || next.startsWith('//') || next.startsWith('/\\')) return null;
  if (next.length > 512 || /[\r\n]/.test(next)) return null;
  return next;
}

export function createAuthMiddleware(deps: { apiKeys: ApiKeyService }): AuthMiddleware {
  async function apiActor(authorization: string | undefined, scope: ApiScope): Promise<Actor> {
    const match = BEARER.exec(authorization ?? '');
    if (!match?.[1]) throw new AppError('invalid_api_key', { headers: API_CHALLENGE });
    const key = await deps.apiKeys.authenticate(match[1]);
    if (!key) throw new AppError('invalid_api_key', { headers: API_CHALLENGE });
    if (!key.scopes.includes(scope)) {
      throw new AppError('insufficient_scope', {
        message: `This endpoint needs an API key with the "${scope}" scope.`,
      });
    }
    return {
      type: 'api_key',
      id: key.id,
      name: key.name,
      scopes: key.scopes,
      ...(key.policy ? { policy: key.policy } : {}),
    } satisfies Actor;
  }

  return {
    page(role) {
      return (req, res, next) => {
        const actor = (res.locals as { actor?: Actor }).actor;
        if (!actor || actor.type !== 'user') {
          if ((req.method === 'GET' || req.method === 'HEAD') && !wantsJson(req)) {
            res.redirect(303, `/login?next=${encodeURIComponent(req.originalUrl)}`);
            return;
          }
          throw new AppError('unauthenticated');
        }
        if (role === 'sysadmin' && actor.role !== 'sysadmin')
          throw new AppError('forbidden', { message: 'Only a sysadmin may do this.' });
        next();
      };
    },
    api(scope) {
      return async (req, res, next) => {
        res.locals.actor = await apiActor(req.get('authorization'), scope);
        next();
      };
    },
    apiActor,
  };
}
