import { timingSafeEqual } from 'node:crypto';
import type { Request, RequestHandler, Response } from 'express';
import session, { type SessionData } from 'express-session';
import { csrfSync } from 'csrf-sync';
import type { SessionGeneration, SessionPolicy } from '../admin/sessions.js';
import type { User, UserService } from '../admin/users.js';
import type { Actor, Role } from '../admin/types.js';
import type { Config } from '../config.js';
import { AppError } from '../errors.js';
import type { SessionsAndLimits } from '../store/sessions.js';
import { createAnonymousCsrf } from './anonymous-csrf.js';
import { isApiRequest } from './api-path.js';
import { translatorFor } from './language.js';

/**
 * Browser sessions and CSRF. express-session keeps the session in the store's session store (Redis via
 * connect-redis, or a pruning memory store on the embedded default). The cookie is ours (`mailgate.sid`,
 * `__Host-` and Secure on https), HttpOnly, SameSite=Lax. Signed with every secret of
 * MAILGATE_SESSION_SECRETS: the first signs, all verify, so adding a new secret in front keeps everyone
 * logged in. Timeouts are checked on the server against times kept in the session (idle, absolute), a
 * store-kept generation number lets one command end every session everywhere, and the user's own epoch ends
 * their sessions when their password changes or the account is disabled. Only a login stores a session:
 * the forms of visitors who are not logged in use a stateless token (anonymous-csrf.ts).
 */

declare module 'express-session' {
  interface SessionData {
    userId?: string;
    /** ms since epoch: login time (absolute timeout) and last request seen (idle timeout). */
    loginAt?: number;
    lastSeenAt?: number;
    /** The session generation at login; a raised generation ends this session. */
    generation?: number;
    /** The user's session epoch at login; a new password or a disabled account raises it and ends this session. */
    userEpoch?: number;
    flash?: { kind: 'ok' | 'error' | 'warning'; message: string };
  }
}

export type { SessionPolicy };

export const DEFAULT_SESSION_POLICY: SessionPolicy = { idleTimeoutMs: 30 * 60_000, absoluteTimeoutMs: 12 * 3600_000 };

export interface SessionUser {
  id: string;
  email: string;
  role: Role;
}

export function sessionCookieName(config: Pick<Config, 'secureCookies'>): string {
  return config.secureCookies ? '__Host-mailgate.sid' : 'mailgate.sid';
}

export interface SessionLayerDeps {
  config: Config;
  store: SessionsAndLimits;
  users: UserService;
  sessionGeneration: SessionGeneration;
  secrets: readonly string[];
  policy?: SessionPolicy;
  now?: () => number;
}

function promisify(fn: (cb: (err?: unknown) => void) => void): Promise<void> {
  return new Promise((resolve, reject) =>
    fn((err) =>
      err ? reject(err instanceof Error ? err : new Error('session store error', { cause: err })) : resolve(),
    ),
  );
}

/** New session id at login (no session fixation), then the login facts. */
export async function startUserSession(req: Request, user: User, generation: number, now: number): Promise<void> {
  await promisify((cb) => req.session.regenerate(cb));
  req.session.userId = user.id;
  req.session.loginAt = now;
  req.session.lastSeenAt = now;
  req.session.generation = generation;
  req.session.userEpoch = user.sessionEpoch;
  await promisify((cb) => req.session.save(cb));
}

export async function endUserSession(req: Request, res: Response, config: Config): Promise<void> {
  await promisify((cb) => req.session.destroy(cb));
  res.clearCookie(sessionCookieName(config), {
    path: '/',
    httpOnly: true,
    sameSite: 'lax',
    secure: config.secureCookies,
  });
}

export function setFlash(req: Request, kind: 'ok' | 'error' | 'warning', message: string): void {
  req.session.flash = { kind, message };
}

/** The handlers to mount before any browser route: session, who is logged in, CSRF. */
export function createSessionLayer(deps: SessionLayerDeps): RequestHandler[] {
  const { config } = deps;
  const policy = deps.policy ?? DEFAULT_SESSION_POLICY;
  const now = deps.now ?? Date.now;
  if (deps.secrets.length === 0) throw new Error('no session secret: set MAILGATE_SESSION_SECRETS');
  // lastSeenAt is written at most this often, so an idle session does not cost a store write per request.
  const touchEveryMs = Math.min(60_000, Math.floor(policy.idleTimeoutMs / 10));

  const sessionHandler = session({
    name: sessionCookieName(config),
    secret: [...deps.secrets],
    store: deps.store.createSessionStore(session),
    resave: false,
    saveUninitialized: false,
    rolling: true,
    unset: 'destroy',
    proxy: config.MAILGATE_TRUST_PROXY > 0 ? true : undefined,
    cookie: { httpOnly: true, sameSite: 'lax', secure: config.secureCookies, path: '/', maxAge: policy.idleTimeoutMs },
  });

  const withSession: RequestHandler = (req, res, next) => {
    if (isApiRequest(req)) {
      next();
      return;
    }
    sessionHandler(req, res, next);
  };

  const identify: RequestHandler = async (req, res, next) => {
    if (isApiRequest(req)) return next();
    // Read (and removed) only when a page is rendered, so a message survives the redirect that precedes it.
    let flash: SessionData['flash'] | null = null;
    Object.defineProperty(res.locals, 'flash', {
      enumerable: true,
      configurable: true,
      get: () => {
        if (flash === null) {
          flash = req.session.flash;
          delete req.session.flash;
        }
        return flash;
      },
    });
    const userId = req.session.userId;
    if (userId === undefined) return next();
    const t = now();
    const loginAt = req.session.loginAt ?? 0;
    const lastSeenAt = req.session.lastSeenAt ?? 0;
    let expired = t - loginAt >= policy.absoluteTimeoutMs || t - lastSeenAt >= policy.idleTimeoutMs;
    if (!expired) expired = (req.session.generation ?? -1) !== (await deps.sessionGeneration.current());
    const found = expired ? null : await deps.users.get(userId);
    // Sessions from before per-user epochs existed carry none: they belong to epoch 0.
    const user = found && !found.disabled && (req.session.userEpoch ?? 0) === found.sessionEpoch ? found : null;
    if (!user) {
      // Start over with an empty session rather than keep a stale login in the store.
      await promisify((cb) => req.session.regenerate(cb));
      setFlash(req, 'error', translatorFor(req)('login.sessionEnded'));
      return next();
    }
    if (t - lastSeenAt >= touchEveryMs) req.session.lastSeenAt = t;
    const actor: Actor = { type: 'user', id: user.id, email: user.email, role: user.role };
    res.locals.user = { id: user.id, email: user.email, role: user.role } satisfies SessionUser;
    res.locals.actor = actor;
    next();
  };

  const csrf = csrfSync({
    getTokenFromRequest: (req) => {
      const body = req.body as Record<string, unknown> | undefined;
      const fromBody = body && typeof body._csrf === 'string' ? body._csrf : undefined;
      const header = req.headers['x-csrf-token'];
      return fromBody ?? (typeof header === 'string' ? header : undefined);
    },
  });

  const anonymousCsrf = createAnonymousCsrf(config, deps.secrets);
  // Logged-in forms carry the token kept in their session; the forms of visitors who are not logged in carry a
  // signed double-submit token, so showing them /login or /setup writes nothing to the session store.
  const loggedIn = (req: Request) => req.session.userId !== undefined;

  const checkCsrf: RequestHandler = (req, res, next) => {
    if (isApiRequest(req)) return next();
    // Generated lazily, when a template asks for it.
    Object.defineProperty(res.locals, 'csrfToken', {
      enumerable: true,
      configurable: true,
      get: () => (loggedIn(req) ? csrf.generateToken(req) : anonymousCsrf.token(req, res)),
    });
    if (req.method === 'GET' || req.method === 'HEAD' || req.method === 'OPTIONS') return next();
    // Express 5 leaves req.body undefined when no form was sent; routes read it as an object.
    req.body ??= {};
    const received = csrf.getTokenFromRequest(req);
    const ok = loggedIn(req)
      ? sessionTokenMatches(received, csrf.getTokenFromState(req))
      : anonymousCsrf.verify(req, received);
    if (!ok) return next(new AppError('csrf_failed'));
    // Routes parse forms with their own schemas; the token is not part of any of them.
    delete (req.body as Record<string, unknown>)._csrf;
    next();
  };

  return [withSession, identify, checkCsrf];
}

function sessionTokenMatches(received: unknown, expected: unknown): boolean {
  // Byte lengths, not string lengths: timingSafeEqual throws on buffers of different sizes.
  const receivedBytes = typeof received === 'string' ? Buffer.from(received) : null;
  const expectedBytes = typeof expected === 'string' ? Buffer.from(expected) : null;
  return (
    receivedBytes !== null &&
    expectedBytes !== null &&
    receivedBytes.length === expectedBytes.length &&
    timingSafeEqual(receivedBytes, expectedBytes)
  );
}
