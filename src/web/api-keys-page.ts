import type { Request } from 'express';
import { z } from 'zod';
import type { CreatedApiKey } from '../admin/api-keys.js';
import type { KeyHandoff } from '../admin/key-handoff.js';
import { keyPolicyFields, type KeyPolicy } from '../admin/key-policy.js';
import type { Config } from '../config.js';
import { formList, formNumber, formText } from './validate.js';

/**
 * The parts of /admin/api-keys beyond its routes: the form schemas, the one-time display of a new key after the
 * redirect that follows its creation, and the SMTP settings an app needs.
 */

declare module 'express-session' {
  interface SessionData {
    /** A key just created, sealed, until the page after the redirect shows it (once). */
    newApiKey?: string;
  }
}

const scope = z.enum(['send', 'admin']);

// One text input: addresses and *@domain entries separated by commas, spaces or new lines; blank = none.
const allowedFromText = z.preprocess((v) => {
  if (typeof v !== 'string') return v;
  const list = v.split(/[\s,]+/).filter(Boolean);
  return list.length > 0 ? list : undefined;
}, keyPolicyFields.allowedFrom);

export const policyForm = z.object({
  serverId: formText(keyPolicyFields.serverId),
  allowedFrom: allowedFromText,
  rateLimitPerMinute: formNumber(keyPolicyFields.rateLimitPerMinute),
});

export const createForm = policyForm.extend({
  name: formText(z.string({ error: 'enter a name' }).max(100, 'at most 100 characters')),
  scopes: formList(scope).refine((list) => list.length > 0, 'tick at least one scope'),
});

export type FormValues = Partial<Record<'name' | 'serverId' | 'allowedFrom' | 'rateLimitPerMinute', string>> & {
  scopes?: string[];
};

/** What was typed, to fill the form again after a refusal. */
export function formValues(body: unknown): FormValues {
  const b = (body ?? {}) as Record<string, unknown>;
  const out: FormValues = {};
  for (const field of ['name', 'serverId', 'allowedFrom', 'rateLimitPerMinute'] as const)
    if (typeof b[field] === 'string') out[field] = b[field];
  const scopes = typeof b.scopes === 'string' ? [b.scopes] : Array.isArray(b.scopes) ? b.scopes : [];
  out.scopes = scopes.filter((s): s is string => typeof s === 'string');
  return out;
}

/** The fields a failed parse names, each once; the page shows a translated sentence per field. */
export function errorFields(error: z.ZodError): string[] {
  return [...new Set(error.issues.map((i) => String(i.path[0] ?? '')))];
}

/** The policy as the edit form shows it. */
export function policyValues(policy: KeyPolicy | undefined): FormValues {
  return {
    serverId: policy?.serverId ?? '',
    allowedFrom: policy?.allowedFrom?.join(', ') ?? '',
    rateLimitPerMinute: policy?.rateLimitPerMinute !== undefined ? String(policy.rateLimitPerMinute) : '',
  };
}

/** The one-time display of a new key: sealed into the session by the post, taken out by the next page. */
export class OneTimeKey {
  constructor(private readonly handoff: KeyHandoff) {}

  put(req: Request, created: CreatedApiKey): void {
    req.session.newApiKey = this.handoff.seal(created, req.sessionID);
  }

  take(req: Request): CreatedApiKey | null {
    const sealed = req.session.newApiKey;
    if (sealed === undefined) return null;
    delete req.session.newApiKey;
    return this.handoff.open(sealed, req.sessionID);
  }
}

export interface SmtpSettings {
  host: string;
  port: number;
  tls: 'starttls' | 'implicit';
}

const WILDCARD_HOSTS = new Set(['0.0.0.0', '::', '[::]']);

/**
 * Where an app reaches the submission front: its bind address, unless that is every address, then the host name of
 * MAILGATE_BASE_URL (the name people already use for mailgate). Null when the front is off.
 */
export function smtpSettings(config: Config): SmtpSettings | null {
  const port = config.MAILGATE_SUBMISSION_PORT;
  if (port === undefined || port === 0) return null;
  const bind = config.MAILGATE_SUBMISSION_HOST ?? config.MAILGATE_HOST;
  const host = WILDCARD_HOSTS.has(bind) ? new URL(config.MAILGATE_BASE_URL).hostname : bind;
  return { host, port, tls: config.MAILGATE_SUBMISSION_IMPLICIT_TLS ? 'implicit' : 'starttls' };
}
