import { Router, type Request, type RequestHandler } from 'express';
import {
  LANGUAGE_NAMES,
  LANGUAGES,
  createTranslations,
  isLanguage,
  negotiateLanguage,
  type Language,
  type Translate,
} from '../i18n/i18n.js';
import { catalogs } from '../i18n/messages/index.js';
import { isApiRequest } from './api-path.js';
import { readCookie } from './cookies.js';
import { hintLocals } from './hints.js';

/**
 * The reader's language for pages and API messages: the `mailgate_lang` cookie (set by the switch in the
 * header, remembered a year), else Accept-Language, else English. Pages get `it.locals.lang` and
 * `it.locals.t(key, params)`; the error handler and routers call `translatorFor(req)`.
 */

export const LANGUAGE_COOKIE = 'mailgate_lang';
const ONE_YEAR_MS = 365 * 24 * 3600 * 1000;

const translations = createTranslations(catalogs);

export function languageOf(req: Pick<Request, 'headers'>): Language {
  return negotiateLanguage(readCookie(req, LANGUAGE_COOKIE) ?? undefined, req.headers['accept-language']);
}

export function translatorFor(req: Pick<Request, 'headers'>): Translate {
  return translations[languageOf(req)];
}

export function translator(lang: Language): Translate {
  return translations[lang];
}

/** Only local paths: the switch must not become an open redirect. */
function safeReturnPath(value: unknown): string {
  if (typeof value !== 'string' || !value.startsWith('/') || value.startsWith('//') || value.includes('\\'))
    return '/admin/smtp-servers';
  return value;
}

export function languageMiddleware(): RequestHandler {
  return (req, res, next) => {
    // The API's hot path skips this: only its error messages are translated, by the error handler.
    if (isApiRequest(req)) {
      next();
      return;
    }
    const lang = languageOf(req);
    res.locals.lang = lang;
    res.locals.t = translations[lang];
    Object.assign(res.locals, hintLocals(translations[lang], lang));
    res.locals.languages = LANGUAGES.map((code) => ({ code, name: LANGUAGE_NAMES[code], current: code === lang }));
    res.locals.currentPath = req.originalUrl;
    res.vary('Accept-Language');
    next();
  };
}

/** `GET /language/:lang?next=/path`: a plain link, so the switch works without JavaScript and without a session. */
export function languageRouter(options: { secureCookies: boolean }): Router {
  const router = Router();
  router.get('/language/:lang', (req, res) => {
    const lang = req.params.lang;
    const next = safeReturnPath(req.query.next);
    if (isLanguage(lang)) {
      res.cookie(LANGUAGE_COOKIE, lang, {
        maxAge: ONE_YEAR_MS,
        sameSite: 'lax',
        secure: options.secureCookies,
        httpOnly: true,
        path: '/',
      });
    }
    res.redirect(303, next);
  });
  return router;
}
