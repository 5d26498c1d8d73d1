import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Eta } from 'eta';
import type { Response } from 'express';
import { languageOf, translator } from './language.js';

/**
 * Server-rendered pages. Templates live in views/ and escape every `<%= %>` by default; the raw
 * `<%~ %>` tag is used only for the layout body. res.locals (user, csrfToken, flash) reach every template as `it.locals`.
 */

const viewsDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../views');

export function createRenderer(options: { cache: boolean }): Eta {
  return new Eta({ views: viewsDir, autoEscape: true, cache: options.cache, autoTrim: false });
}

export interface PageData {
  title: string;
  [key: string]: unknown;
}

export function renderPage(res: Response, eta: Eta, template: string, data: PageData, status = 200): void {
  // Pages rendered before the language middleware ran (an early error) still get a translator.
  if (!res.locals.t) {
    const lang = languageOf(res.req);
    res.locals.lang = lang;
    res.locals.t = translator(lang);
  }
  const html = eta.render(template, { ...data, locals: res.locals });
  res.status(status).type('html').send(html);
}
