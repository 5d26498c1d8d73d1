import { hash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import type { AuthMiddleware } from './auth.js';
import { answerForError } from './error-handler.js';
import { readJsonBody, readsPlainJson } from './json-body.js';
import {
  SEND_PATH,
  sendOne,
  singleMessageBodyError,
  singleMessageBodyLimit,
  type Intake,
  type IntakeLimits,
} from './message-intake.js';
import { observeRequest } from './request-metrics.js';

/**
 * `POST /api/v1/messages` with a plain JSON body, answered before express sees the request: the busiest route, and
 * express's router, response helpers and middleware chain were an eighth of the CPU a message costs. It is the
 * route express serves, made of the same pieces in the same order: the security headers helmet sets (recorded
 * once), the metrics, the JSON body reader and its limits, the API key check, the Idempotency-Key, the intake, the
 * 202, and the one error rendering. Everything else on the path (other methods, other spellings of the path, bodies
 * express.json reads: compressed, other charsets, other types) goes to express, which answers it as before.
 */

export interface SendFastPathDeps {
  auth: Pick<AuthMiddleware, 'apiActor'>;
  intake: Intake;
  limits: IntakeLimits;
  log: Logger;
  metrics: Pick<Metrics, 'httpDuration' | 'httpRequests'>;
  /** The security headers of every response (see recordHeaders in security-headers.ts). */
  securityHeaders: readonly (readonly [string, string])[];
}

/** Answers the request and returns true, or returns false having touched nothing (express answers it). */
export type FastPath = (req: IncomingMessage, res: ServerResponse) => boolean;

const QUERY = '?'.charCodeAt(0);

function isSendPath(url: string | undefined): boolean {
  return (
    url !== undefined &&
    url.startsWith(SEND_PATH) &&
    (url.length === SEND_PATH.length || url.charCodeAt(SEND_PATH.length) === QUERY)
  );
}

export function sendFastPath(deps: SendFastPathDeps): FastPath {
  const limit = singleMessageBodyLimit(deps.limits);
  const where = { method: 'POST', path: SEND_PATH };

  function refuse(req: IncomingMessage, res: ServerResponse, err: unknown): void {
    const answer = answerForError(deps.log, err, req, where);
    if (res.headersSent) {
      res.end();
      return;
    }
    for (const [name, value] of Object.entries(answer.headers)) res.setHeader(name, value);
    sendJson(res, answer.status, answer.json);
  }

  async function accept(req: IncomingMessage, res: ServerResponse, body: unknown): Promise<void> {
    const actor = await deps.auth.apiActor(req.headers.authorization, 'send');
    const answer = await sendOne(deps.intake, body, actor, req.headers['idempotency-key'] as string | undefined);
    if (answer.replayed) res.setHeader('Idempotent-Replayed', 'true');
    res.setHeader('Location', answer.location);
    sendJson(res, 202, answer.json);
  }

  return (req, res) => {
    if (req.method !== 'POST' || !isSendPath(req.url) || !readsPlainJson(req)) return false;
    // Express names the route once its body is read: a refused body counts as `other`, as it did there.
    let route = 'other';
    observeRequest(deps.metrics, 'POST', res, () => route);
    for (const [name, value] of deps.securityHeaders) res.setHeader(name, value);
    readJsonBody(req, res, limit, (err, body) => {
      if (err) return refuse(req, res, singleMessageBodyError(err));
      route = SEND_PATH;
      accept(req, res, body).catch((e: unknown) => refuse(req, res, e));
    });
    return true;
  };
}

/**
 * A JSON answer with the headers express's res.json gives it (type, length, weak ETag), so clients see no seam.
 * The body goes as a string: node then writes it in one piece with the head, not as a second buffer.
 */
function sendJson(res: ServerResponse, status: number, value: unknown): void {
  const body = JSON.stringify(value);
  const length = Buffer.byteLength(body, 'utf8');
  res.statusCode = status;
  res.setHeader('Content-Type', 'application/json; charset=utf-8');
  res.setHeader('Content-Length', length);
  res.setHeader('ETag', `W/"${length.toString(16)}-${hash('sha1', body, 'base64').substring(0, 27)}"`);
  res.end(body, 'utf8');
}
