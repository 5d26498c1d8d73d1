import type { Request, Response } from 'express';
import type { Eta } from 'eta';
import { renderPage } from './render.js';

/**
 * The confirmation step of a destructive form post, without JavaScript: a post that lacks `confirmed=yes`
 * answers a page that says what will happen and repeats the form (same action, same fields) with a
 * **Confirm** button. Only the confirmed post acts. The CSRF token is the page's own, as on every form.
 */

export interface ConfirmationText {
  /** Page title, e.g. "Delete SMTP server". */
  title: string;
  /** One sentence naming what will happen and to what. */
  question: string;
  /** Optional consequence, e.g. "Queued mail for this server will be held." */
  consequence?: string;
  /** Where Cancel leads (a local path). */
  cancelHref: string;
}

export function isConfirmed(req: Request): boolean {
  const body = req.body as Record<string, unknown> | undefined;
  return body?.confirmed === 'yes';
}

/** True when the post is confirmed; otherwise renders the confirmation page and returns false. */
export function confirmed(req: Request, res: Response, eta: Eta, text: ConfirmationText): boolean {
  if (isConfirmed(req)) return true;
  const body = (req.body ?? {}) as Record<string, unknown>;
  const fields = Object.entries(body)
    .filter(([name, value]) => name !== '_csrf' && name !== 'confirmed' && typeof value === 'string')
    .map(([name, value]) => ({ name, value: value as string }));
  renderPage(res, eta, 'confirm', { ...text, action: req.originalUrl, fields });
  return false;
}
