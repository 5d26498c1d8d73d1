import type { IncomingMessage, ServerResponse } from 'node:http';
import helmet from 'helmet';

/**
 * The security headers of every response: helmet with mailgate's Content-Security-Policy. Its middleware sets the
 * same headers on every request (no directive depends on the request), so a handler outside express can have them
 * as a fixed list, recorded once from the middleware itself: the two can never disagree.
 */

export type HeaderHandler = (req: IncomingMessage, res: ServerResponse, next: (err?: unknown) => void) => void;

export function securityHeaders(options: { secureCookies: boolean }): HeaderHandler {
  return helmet({
    contentSecurityPolicy: {
      directives: {
        defaultSrc: ["'self'"],
        scriptSrc: ["'self'"],
        styleSrc: ["'self'"],
        imgSrc: ["'self'"],
        formAction: ["'self'"],
        frameAncestors: ["'none'"],
        objectSrc: ["'none'"],
        baseUri: ["'none'"],
      },
    },
    strictTransportSecurity: options.secureCookies,
  });
}

/** The headers `middleware` sets, in its order, as it sets them on any response. */
export function recordHeaders(middleware: HeaderHandler): [string, string][] {
  const headers = new Map<string, string>();
  const recorder = {
    setHeader(name: string, value: string | number | readonly string[]) {
      headers.set(name, String(value));
      return recorder;
    },
    removeHeader(name: string) {
      headers.delete(name);
    },
    getHeader: (name: string) => headers.get(name),
  };
  let finished = false;
  middleware({ headers: {} } as IncomingMessage, recorder as unknown as ServerResponse, (err?: unknown) => {
    if (err) throw err instanceof Error ? err : new Error('the security headers middleware failed');
    finished = true;
  });
  if (!finished) throw new Error('the security headers middleware did not finish at once');
  return [...headers];
}
