import { z } from 'zod';
import { attachmentList, customHeaders, type AttachmentInput } from './attachments.js';
import { deriveTextPart, htmlToText } from './html-text.js';

/**
 * Turning an API request into exactly one SMTP message. Input is validated strictly and never passed on
 * as headers: the From header is built from the server's address, the subject gets the server's prefix,
 * recipients become an explicit envelope, and only the few custom headers of attachments.ts may be supplied.
 * Every message is multipart/alternative (text + html); the text part is derived from html if missing, once,
 * when the message is accepted (withTextPart), and stored with it.
 */

export const MAX_RECIPIENTS = 100;
export const MAX_SUBJECT_LENGTH = 500;
export const MAX_NAME_LENGTH = 100;
export const MAX_BODY_CHARS = 1_000_000;

// Dot-atom local part (RFC 5322 atext, no quoted strings) and a host name of LDH labels with a
// letter-only top label, or an IPv4 literal. ASCII only: no SMTPUTF8, so every relay accepts it.
const ATEXT = "[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+";
const LOCAL_PART = new RegExp(`^${ATEXT}(\\.${ATEXT})*$`);
const LABEL = /^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$/;
const IPV4_LITERAL = /^\[(25[0-5]|2[0-4]\d|1?\d?\d)(\.(25[0-5]|2[0-4]\d|1?\d?\d)){3}\]$/;

/** Why an address is not acceptable, or null when it is. */
export function addressProblem(address: string): string | null {
  if (address.length > 254) return 'is longer than 254 characters';
  // eslint-disable-next-line no-control-regex
  if (/[\x00-\x1f\x7f]/.test(address)) return 'contains a control character (CR, LF, NUL, …)';
  const at = address.lastIndexOf('@');
  if (at <= 0 || at === address.length - 1) return 'is not of the form name@domain';
  const local = address.slice(0, at);
  const domain = address.slice(at + 1);
  if (local.length > 64) return 'has a local part longer than 64 characters';
  if (!LOCAL_PART.test(local))
    return "has characters not allowed before the @ (use letters, digits and !#$%&'*+/=?^_`{|}~.- without leading, trailing or double dots)";
  if (IPV4_LITERAL.test(domain)) return null;
  const labels = domain.split('.');
  if (
    labels.length < 2 ||
    !labels.every((l) => LABEL.test(l)) ||
    !/^[A-Za-z]{2,63}$/.test(labels[labels.length - 1]!)
  ) {
    return 'has a domain that is not a valid host name (e.g. example.com)';
  }
  return null;
}

export function isValidAddress(address: string): boolean {
  return addressProblem(address) === null;
}

export const emailAddress = z.string().superRefine((value, ctx) => {
  const problem = addressProblem(value);
  if (problem) ctx.addIssue({ code: 'custom', message: `address ${problem}` });
});

// CR, LF and NUL would let a value start a new header line; other control characters have no place either.
// eslint-disable-next-line no-control-regex
const CONTROL = /[\x00-\x08\x0a-\x1f\x7f]/;
export const headerText = (max: number, what: string) =>
  z
    .string()
    .max(max, `${what} must be at most ${max} characters`)
    .refine((v) => !CONTROL.test(v), `${what} must not contain CR, LF, NUL or other control characters`);

// Mail clients show a display name as it is: with any of these it can pass for an address ("ceo@bank.example"
// or "Bank <ceo@bank.example>") and hide the real one.
const ADDRESS_LIKE = /[<>@"]/;
const ADDRESS_LIKE_ALL = /[<>@"]/g;

const recipientList = z
  .union([emailAddress, z.array(emailAddress).max(MAX_RECIPIENTS, `at most ${MAX_RECIPIENTS} addresses`)])
  .transform((v) => (Array.isArray(v) ? v : [v]));

/** Body of POST /api/v1/messages. */
export const messageInput = z
  .strictObject({
    serverId: z
      .string()
      .regex(/^[A-Za-z0-9_-]{1,64}$/, 'not a valid server id')
      .optional(),
    fromName: headerText(MAX_NAME_LENGTH, 'fromName')
      .refine((v) => !ADDRESS_LIKE.test(v), 'fromName must not contain <, >, @ or "')
      .optional(),
    to: recipientList.refine((v) => v.length > 0, 'at least one recipient'),
    cc: recipientList.optional(),
    bcc: recipientList.optional(),
    replyTo: emailAddress.optional(),
    subject: headerText(MAX_SUBJECT_LENGTH, 'subject'),
    // An empty body counts as not given: every message needs a text and an html part to stay multipart.
    text: z.preprocess(
      (v) => (v === '' ? undefined : v),
      z
        .string()
        .max(MAX_BODY_CHARS)
        .refine((v) => !v.includes('\0'), 'text must not contain NUL')
        .optional(),
    ),
    html: z.preprocess(
      (v) => (v === '' ? undefined : v),
      z
        .string()
        .max(MAX_BODY_CHARS)
        .refine((v) => !v.includes('\0'), 'html must not contain NUL')
        .optional(),
    ),
    attachments: attachmentList.optional(),
    headers: customHeaders.optional(),
  })
  .superRefine((v, ctx) => {
    if (v.text === undefined && v.html === undefined)
      ctx.addIssue({ code: 'custom', path: ['text'], message: 'give text, html or both' });
    const total = v.to.length + (v.cc?.length ?? 0) + (v.bcc?.length ?? 0);
    if (total > MAX_RECIPIENTS)
      ctx.addIssue({
        code: 'custom',
        path: ['to'],
        message: `at most ${MAX_RECIPIENTS} recipients in to, cc and bcc together (got ${total})`,
      });
  });

export type MessageInput = z.output<typeof messageInput>;

export interface RecipientEntry {
  address: string;
  kind: 'to' | 'cc' | 'bcc';
}

/**
 * The recipients in order, each address once (compared case-insensitively); to wins over cc over bcc,
 * so nobody gets a copy twice and a Bcc'd address already in To stays visible only as To.
 */
export function recipientsOf(input: Pick<MessageInput, 'to' | 'cc' | 'bcc'>): RecipientEntry[] {
  const seen = new Set<string>();
  const out: RecipientEntry[] = [];
  for (const kind of ['to', 'cc', 'bcc'] as const) {
    for (const address of input[kind] ?? []) {
      const key = address.toLowerCase();
      if (seen.has(key)) continue;
      seen.add(key);
      out.push({ address, kind });
    }
  }
  return out;
}

/** The server fields that shape a message. */
export interface SenderSettings {
  name: string;
  fromAddress: string;
  emailPrefix?: string | null;
}

/** A message ready for the transport: no field reaches the wire as a raw header. */
export interface ComposedMessage {
  envelope: { from: string; to: string[] };
  from: { name: string; address: string };
  to: string[];
  cc: string[];
  replyTo?: string;
  subject: string;
  text: string;
  html: string;
  /** Base64 content, as accepted; inline when `cid` is set. */
  attachments?: AttachmentInput[];
  /** Allowed custom headers only (attachments.ts). */
  headers?: Record<string, string>;
}

/**
 * `{name} (mailgate)` → `Joe Bloggs (mailgate)`. Replacement is literal (no `$&` surprises). The format is
 * checked when the configuration is loaded; a name that did not pass the fromName check (a server's name,
 * a message accepted before the check) loses its address-like characters here.
 */
export function displayName(format: string, name: string): string {
  return format.split('{name}').join(name.replace(ADDRESS_LIKE_ALL, ''));
}

export function prefixedSubject(prefix: string | null | undefined, subject: string): string {
  return prefix ? `${prefix} ${subject}` : subject;
}

export function composeMessage(input: MessageInput, sender: SenderSettings, fromFormat: string): ComposedMessage {
  const recipients = recipientsOf(input);
  const html = input.html ?? textToHtml(input.text ?? '');
  // Only messages accepted before the text part was stored reach this without one.
  const text = input.text ?? (htmlToText(html) || ' ');
  const composed: ComposedMessage = {
    envelope: { from: sender.fromAddress, to: recipients.map((r) => r.address) },
    from: { name: displayName(fromFormat, input.fromName ?? sender.name), address: sender.fromAddress },
    to: recipients.filter((r) => r.kind === 'to').map((r) => r.address),
    cc: recipients.filter((r) => r.kind === 'cc').map((r) => r.address),
    subject: prefixedSubject(sender.emailPrefix, input.subject),
    text,
    html,
  };
  if (input.replyTo) composed.replyTo = input.replyTo;
  if (input.attachments?.length) composed.attachments = input.attachments;
  if (input.headers && Object.keys(input.headers).length > 0) composed.headers = input.headers;
  return composed;
}

/** The input with its text part, derived from html when only html was given: done once, before storing. */
export async function withTextPart<T extends Pick<MessageInput, 'text' | 'html'>>(input: T): Promise<T> {
  if (input.text !== undefined || input.html === undefined) return input;
  return { ...input, text: await deriveTextPart(input.html) };
}

export function textToHtml(text: string): string {
  const escaped = text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
  return `<p>${escaped.replace(/\r?\n/g, '<br>\n')}</p>`;
}
