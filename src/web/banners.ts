import type { RequestHandler, Response } from 'express';

/**
 * Site-wide lines at the top of every admin page (outgoing mail disabled, a grant that needs
 * re-authorization, a secret about to expire): each names the problem and links to the page that fixes it.
 * Sources register a middleware with `bannerSource`; the layout renders `it.locals.banners`.
 */

export interface Banner {
  kind: 'warning' | 'error' | 'info';
  /** Already in the reader's language. */
  message: string;
  href?: string;
  linkText?: string;
}

export function addBanner(res: Response, banner: Banner): void {
  const list = (res.locals.banners ??= []) as Banner[];
  list.push(banner);
}

/**
 * A middleware that adds the banners of one source to pages of logged-in admins only (never to the API, the
 * login page or probes), and never fails a page: a source that cannot answer shows nothing.
 */
export function bannerSource(source: (res: Response) => Promise<Banner[]> | Banner[]): RequestHandler {
  return (req, res, next) => {
    if (req.method !== 'GET' || !res.locals.user || !req.accepts('html')) {
      next();
      return;
    }
    Promise.resolve()
      .then(() => source(res))
      .then(
        (banners) => {
          for (const banner of banners) addBanner(res, banner);
          next();
        },
        () => next(),
      );
  };
}
