import net from 'node:net';
import { z } from 'zod';
import { AppError, type ErrorDetail } from '../../errors.js';
import { emailAddress, headerText } from '../compose.js';
import { isApiProtocol, plaintextAuthProblem, type ApiProtocol, type SmtpServerDoc } from './model.js';

/** The server form and API input (create, update), and the cross-field rules every server must meet. */

const HOST = /^(?=.{1,253}$)(?!-)[A-Za-z0-9-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*$/;
export const hostName = z
  .string()
  .refine((v) => HOST.test(v) || net.isIP(v.replace(/^\[|\]$/g, '')) !== 0, 'expected a host name or an IP address');
const blankToUndefined = (v: unknown) => (typeof v === 'string' ? (v.trim() === '' ? undefined : v.trim()) : v);
const blankToNull = (v: unknown) => (typeof v === 'string' ? (v.trim() === '' ? null : v.trim()) : v);
const text = <S extends z.ZodType>(inner: S) => z.preprocess(blankToUndefined, inner);
const nullableText = <S extends z.ZodType>(inner: S) => z.preprocess(blankToNull, inner.nullable());
const numberOrNull = (inner: z.ZodNumber) =>
  z.preprocess((v) => (typeof v === 'string' ? (v.trim() === '' ? null : Number(v.trim())) : v), inner.nullable());
const checkbox = z.preprocess((v) => v === true || v === 'on' || v === 'true' || v === '1', z.boolean());
const optionalCheckbox = z.preprocess(
  (v) => (v === undefined ? undefined : v === true || v === 'on' || v === 'true' || v === '1'),
  z.boolean().optional(),
);

const common = {
  name: text(z.string().min(1, 'required').max(100, 'at most 100 characters')),
  description: nullableText(z.string().max(500, 'at most 500 characters')).optional(),
  // 'required' rather than zod's "expected string, received undefined" when the field is absent.
  fromAddress: text(z.string('required').pipe(emailAddress)),
  emailPrefix: nullableText(headerText(60, 'emailPrefix')).optional(),
  protocol: text(z.enum(['smtp', 'smtps', 'graph', 'gmail_api'], 'choose smtp, smtps, graph or gmail_api')).optional(),
  host: text(hostName).optional(),
  port: numberOrNull(
    z
      .number('expected a number')
      .int('expected a whole number')
      .min(1, 'expected 1-65535')
      .max(65535, 'expected 1-65535'),
  ).optional(),
  timeoutMs: numberOrNull(
    z
      .number('expected a number of milliseconds')
      .int('expected whole milliseconds')
      .max(3_600_000, 'at most 3600000 (one hour)'),
  ).optional(),
  rateLimitPerMinute: numberOrNull(
    z.number('expected a number of messages').int('expected a whole number').min(1, 'at least 1').max(100_000),
  ).optional(),
  authMethod: text(z.enum(['none', 'basic', 'oauth2'], 'choose none, basic or oauth2')).optional(),
  oauthIntegrationId: nullableText(z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'not a valid integration id')).optional(),
  username: nullableText(headerText(254, 'username')).optional(),
  // A list in JSON; one address per line (or comma-separated) on the form.
  sendAs: z
    .preprocess(
      (v) =>
        typeof v === 'string'
          ? v
              .split(/[\s,]+/)
              .map((a) => a.trim())
              .filter(Boolean)
          : v,
      z.array(emailAddress).max(50, 'at most 50 addresses'),
    )
    .optional(),
  // Passwords are not trimmed: spaces can be part of them.
  password: z.preprocess((v) => (v === '' ? undefined : v), z.string().max(1024, 'at most 1024 characters').optional()),
  isDefault: optionalCheckbox,
};

export const createServerInput = z.strictObject({
  ...common,
  serviceProvider: text(
    z.enum(['custom', 'gmail', 'yahoo', 'microsoft'], 'choose custom, gmail, yahoo or microsoft'),
  ).optional(),
  tls: checkbox.optional(),
});

export const updateServerInput = z.strictObject({
  ...(Object.fromEntries(Object.entries(common).map(([k, v]) => [k, v.optional()])) as {
    [K in keyof typeof common]: z.ZodOptional<(typeof common)[K]>;
  }),
  tls: optionalCheckbox,
  changePassword: optionalCheckbox,
  /** The version the editor saw; a mismatch is a conflict (someone else saved in between). */
  version: z.preprocess(
    (v) => (typeof v === 'string' && v.trim() !== '' ? Number(v) : v),
    z.number().int().min(1).optional(),
  ),
});

/**
 * Test connection / Send test email on unsaved values: the create fields, all optional (an `id` fills the
 * rest from the stored server, whose password is reused unless a new one is typed), plus `testRecipient`.
 */
// Blank form fields mean "not given" here (a test needs no name), so they are dropped before the checks.
const withoutBlanks = (v: unknown) =>
  v && typeof v === 'object' && !Array.isArray(v)
    ? Object.fromEntries(Object.entries(v).filter(([, x]) => !(typeof x === 'string' && x.trim() === '')))
    : v;

export const testServerInput = z.preprocess(
  withoutBlanks,
  z.strictObject({
    ...(Object.fromEntries(Object.entries(common).map(([k, v]) => [k, v.optional()])) as {
      [K in keyof typeof common]: z.ZodOptional<(typeof common)[K]>;
    }),
    id: text(z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'not a valid id')).optional(),
    serviceProvider: text(
      z.enum(['custom', 'gmail', 'yahoo', 'microsoft'], 'choose custom, gmail, yahoo or microsoft'),
    ).optional(),
    tls: optionalCheckbox,
    changePassword: optionalCheckbox,
    version: z.unknown().optional(),
    // Blank is allowed here: only Send test email needs it, and says so by field.
    testRecipient: text(emailAddress.optional()),
  }),
);

export type CreateServerInput = z.output<typeof createServerInput>;
export type TestServerInput = z.output<typeof testServerInput>;
export type UpdateServerInput = z.output<typeof updateServerInput>;

export function invalid(details: ErrorDetail[]): AppError {
  return new AppError('validation_failed', {
    message: details.map((d) => `${d.field}: ${d.message}`).join('; '),
    details,
  });
}

/** Cross-field rules shared by create and update, on the merged result. */
export function checkServer(doc: Omit<SmtpServerDoc, 'createdAt' | 'updatedAt' | 'passwordVersion'>): void {
  const details: ErrorDetail[] = [];
  const api = isApiProtocol(doc.protocol);
  if (!doc.host && !api) details.push({ field: 'host', message: 'required' });
  if (api && doc.authMethod !== 'oauth2')
    details.push({
      field: 'authMethod',
      message: `${doc.protocol} sends with an OAuth 2.0 access token: choose oauth2 and an integration`,
    });
  if (doc.authMethod === 'basic') {
    if (!doc.username) details.push({ field: 'username', message: 'required for basic authentication' });
    if (!doc.password) details.push({ field: 'password', message: 'required for basic authentication' });
  }
  if (doc.authMethod === 'oauth2' && !doc.oauthIntegrationId)
    details.push({ field: 'oauthIntegrationId', message: 'choose the OAuth 2.0 integration' });
  if (doc.host) {
    const problem = plaintextAuthProblem(doc);
    if (problem) details.push({ field: 'tls', message: problem });
  }
  if (details.length) throw invalid(details);
}

/** What the mail area knows of an OAuth integration (the oauth area owns it). */
export interface IntegrationInfo {
  provider: string;
  graphBaseUrl: string | null;
}

const API_PROVIDER: Record<ApiProtocol, { kind: string; label: string }> = {
  graph: { kind: 'microsoft', label: 'Microsoft' },
  gmail_api: { kind: 'google', label: 'Google' },
};

/**
 * A Graph server needs a Microsoft integration and a Gmail API server a Google one: the token of another
 * provider would be refused by the API on every send, so the mistake is named when the server is saved.
 */
export async function checkApiIntegration(
  doc: Pick<SmtpServerDoc, 'protocol' | 'authMethod' | 'oauthIntegrationId'>,
  providerOf: ((id: string) => Promise<string | null>) | undefined,
): Promise<void> {
  if (!providerOf || !isApiProtocol(doc.protocol) || doc.authMethod !== 'oauth2' || !doc.oauthIntegrationId) return;
  const wanted = API_PROVIDER[doc.protocol];
  const actual = await providerOf(doc.oauthIntegrationId);
  if (actual === wanted.kind) return;
  throw invalid([
    {
      field: 'oauthIntegrationId',
      message:
        actual === null
          ? 'no such OAuth 2.0 integration'
          : `${doc.protocol} needs an OAuth 2.0 integration of provider ${wanted.label} (${wanted.kind}); this one is ${actual}`,
    },
  ]);
}
