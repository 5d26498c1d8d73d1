import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Request, Response } from 'express';
import type { Config } from '../config.js';
import { readCookie } from './cookies.js';

/**
 * CSRF protection for the forms of visitors who are not logged in (/login, /setup), without a stored
 * session: a signed double submit. A random value lives in a cookie of ours; the form carries an HMAC of it
 * under the session secret. A cross-site page can neither read the cookie nor compute the HMAC, and nothing
 * is written to the session store, so a flood of anonymous page views costs no memory.
 */

const NONCE_BYTES = 24;
const NONCE = /^[A-Za-z0-9_-]{32}$/;
/** Keeps these MACs apart from anything else the session secrets sign. */
const PURPOSE = 'mailgate anonymous form\0';

export function anonymousCsrfCookieName(config: Pick<Config, 'secureCookies'>): string {
  return config.secureCookies ? '__Host-mailgate.csrf' : 'mailgate.csrf';
}

function mac(secret: string, nonce: string): Buffer {
  return createHmac('sha256', secret)
    .update(PURPOSE + nonce)
    .digest();
}

export interface AnonymousCsrf {
  /** The token for a form on this response; sets the cookie when the visitor has none (or a malformed one). */
  token(req: Request, res: Response): string;
  /** Whether `received` is the token for the cookie this request carries, under any of the secrets. */
  verify(req: Request, received: unknown): boolean;
}

export function createAnonymousCsrf(config: Pick<Config, 'secureCookies'>, secrets: readonly string[]): AnonymousCsrf {
  const name = anonymousCsrfCookieName(config);
  const [signing] = secrets;
  if (signing === undefined) throw new Error('no session secret: set MAILGATE_SESSION_SECRETS');
  return {
    token(req, res) {
      const locals = res.locals as { anonymousCsrfNonce?: string };
      let nonce = locals.anonymousCsrfNonce ?? readCookie(req, name);
      if (nonce === null || !NONCE.test(nonce)) {
        nonce = randomBytes(NONCE_BYTES).toString('base64url');
        // A session cookie (no max-age): the token lives as long as the browser window, like the form.
        res.cookie(name, nonce, { httpOnly: true, sameSite: 'lax', secure: config.secureCookies, path: '/' });
      }
      locals.anonymousCsrfNonce = nonce;
      return mac(signing, nonce).toString('base64url');
    },
    verify(req, received) {
      const nonce = readCookie(req, name);
      if (nonce === null || !NONCE.test(nonce) || typeof received !== 'string') return false;
      const given = Buffer.from(received, 'base64url');
      // base64url decoding skips junk characters, so compare the canonical spelling too.
      if (given.length !== 32 || given.toString('base64url') !== received) return false;
      return secrets.some((secret) => timingSafeEqual(mac(secret, nonce), given));
    },
  };
}
