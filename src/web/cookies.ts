import type { Request } from 'express';

/** One cookie's value from the request header, without a cookie parser on every route. */
export function readCookie(req: Pick<Request, 'headers'>, name: string): string | null {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return null;
}
