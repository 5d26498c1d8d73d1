import type { ErrorDetail } from '../errors.js';
import type { Translate } from '../i18n/i18n.js';
import { PROVIDER_PRESETS, type ServiceProvider } from '../mail/servers.js';

/**
 * The add/edit server form: its option lists (data, so new protocols or methods are one line each), which
 * fields each authentication method shows, plain translated messages for failed fields, and the no-JavaScript
 * preset step. Labels are never internal field names.
 */

export interface FormOption {
  value: string;
  label: string;
  /** Values a provider fills in (serviceProvider only), read by public/server-form.js. */
  preset?: { protocol: string; host: string; port: number; tls: boolean };
}

export const PROVIDERS: readonly ServiceProvider[] = ['custom', 'gmail', 'yahoo', 'microsoft'];
export const PROTOCOLS: readonly string[] = ['smtp', 'smtps', 'graph', 'gmail_api'];
export const AUTH_METHODS: readonly string[] = ['none', 'basic', 'oauth2'];

/** Which authentication methods show a field; fields not listed are always shown. */
export const FIELDS_FOR_AUTH: Readonly<Record<string, readonly string[]>> = {
  username: ['basic', 'oauth2'],
  password: ['basic'],
  oauthIntegrationId: ['oauth2'],
};

/** Which protocols show a field; fields not listed are always shown (an HTTP API protocol needs no host or port). */
export const FIELDS_FOR_PROTOCOL: Readonly<Record<string, readonly string[]>> = {
  host: ['smtp', 'smtps'],
  port: ['smtp', 'smtps'],
  tls: ['smtp', 'smtps'],
};

export function formOptions(t: Translate) {
  return {
    providers: PROVIDERS.map((value): FormOption => {
      const preset = value === 'custom' ? undefined : PROVIDER_PRESETS[value];
      const label = t(`servers.provider.${value}`);
      return preset
        ? {
            value,
            label: `${label} (${preset.host}:${preset.port}, ${preset.protocol}${preset.tls ? ' + STARTTLS' : ''})`,
            preset: { protocol: preset.protocol, host: preset.host, port: preset.port, tls: preset.tls },
          }
        : { value, label };
    }),
    protocols: PROTOCOLS.map((value): FormOption => ({ value, label: t(`servers.protocol.${value}`) })),
    authMethods: AUTH_METHODS.map((value): FormOption => ({ value, label: t(`servers.auth.${value}`) })),
    fieldsForAuth: FIELDS_FOR_AUTH,
    fieldsForProtocol: FIELDS_FOR_PROTOCOL,
  };
}

const FIELD_LABELS = new Set([
  'name',
  'description',
  'fromAddress',
  'emailPrefix',
  'serviceProvider',
  'protocol',
  'host',
  'port',
  'timeoutMs',
  'tls',
  'authMethod',
  'oauthIntegrationId',
  'username',
  'password',
  'changePassword',
  'isDefault',
  'testRecipient',
]);

export function fieldLabel(t: Translate, field: string): string {
  return t(FIELD_LABELS.has(field) ? `servers.field.${field}` : 'servers.field.general');
}

/** A validation message in the reader's language; raw schema text never reaches the page. */
export function fieldMessage(t: Translate, detail: ErrorDetail): string {
  const { field, message } = detail;
  const tooLong = /at most (\d+) characters/.exec(message);
  // A blank optional field fails its inner check with "received undefined": for a person that is "required".
  if (message === 'required' || /received undefined/.test(message)) return t('servers.error.required');
  if (/^required for basic/.test(message)) return t('servers.error.requiredBasic');
  if (tooLong) return t('servers.error.tooLong', { max: Number(tooLong[1]) });
  if (/authentication needs TLS/.test(message)) return t('servers.error.plaintextAuth');
  if (/^tick changePassword/.test(message)) return t('servers.error.tickChangePassword');
  if (/host changed|retype the password/.test(message)) return t('servers.error.passwordNewHost');
  if (/holds an authorized mailbox|tokens never go to another host/.test(message))
    return t('servers.error.hostWhileAuthorized');
  if (/choose the OAuth 2.0 integration/.test(message)) return t('servers.error.chooseIntegration');
  if (/control characters/.test(message)) return t('servers.error.controlChars');
  if (field === 'host') return t('servers.error.host');
  if (field === 'port') return t('servers.error.port');
  if (field === 'timeoutMs') return t('servers.error.timeout');
  if (field === 'fromAddress' || field === 'testRecipient') return t('servers.error.address');
  if (/^choose /.test(message)) return t('servers.error.choose');
  return t('servers.error.invalid');
}

export interface FieldError {
  field: string;
  label: string;
  message: string;
}

/** One entry per field (messages of one field joined), in the order of the details. */
export function fieldErrors(t: Translate, details: readonly ErrorDetail[]): FieldError[] {
  const byField = new Map<string, string[]>();
  for (const d of details) {
    const field = FIELD_LABELS.has(d.field) ? d.field : '';
    const list = byField.get(field) ?? [];
    const message = fieldMessage(t, d);
    if (!list.includes(message)) list.push(message);
    byField.set(field, list);
  }
  return [...byField].map(([field, messages]) => ({
    field,
    label: fieldLabel(t, field),
    message: messages.join(' '),
  }));
}

/** Blank required fields, all at once, before any other check (so errors come in one round). */
export function missingFields(body: Record<string, unknown>, options: { creating: boolean }): ErrorDetail[] {
  const blank = (name: string) => {
    const v = body[name];
    return typeof v !== 'string' || v.trim() === '';
  };
  const provider = typeof body.serviceProvider === 'string' ? body.serviceProvider : 'custom';
  const required = ['name', 'fromAddress'];
  if (!options.creating || provider === 'custom' || !(provider in PROVIDER_PRESETS)) required.push('host');
  if (body.authMethod === 'basic') {
    required.push('username');
    if (options.creating) required.push('password');
  }
  if (body.authMethod === 'oauth2') required.push('oauthIntegrationId');
  return required.filter(blank).map((field) => ({ field, message: 'required' }));
}

/** What the form shows after a failed post: the typed values, never the password; checkboxes as booleans. */
export function formValues(body: Record<string, unknown>): Record<string, unknown> {
  const { password: _p, _csrf: _c, ...rest } = body;
  return {
    ...rest,
    tls: rest.tls === 'on' || rest.tls === true,
    isDefault: rest.isDefault === 'on' || rest.isDefault === true,
    changePassword: rest.changePassword === 'on' || rest.changePassword === true,
  };
}

export function typedPassword(body: Record<string, unknown>): boolean {
  return typeof body.password === 'string' && body.password !== '';
}

/**
 * Without JavaScript a chosen provider cannot fill the fields before the post: when the posted protocol, host,
 * port or TLS differ from the provider's, the form comes back with the provider's values filled in (and says
 * so) instead of saving values the admin never saw.
 */
export function presetToFill(body: Record<string, unknown>): Record<string, unknown> | null {
  const provider = body.serviceProvider;
  if (typeof provider !== 'string' || provider === 'custom' || !(provider in PROVIDER_PRESETS)) return null;
  const p = PROVIDER_PRESETS[provider as Exclude<ServiceProvider, 'custom'>];
  const tls = body.tls === 'on' || body.tls === true || body.tls === 'true';
  const same =
    body.protocol === p.protocol &&
    (typeof body.host === 'string' ? body.host.trim() : '') === p.host &&
    (typeof body.port === 'string' ? body.port.trim() : typeof body.port === 'number' ? String(body.port) : '') ===
      String(p.port) &&
    tls === p.tls;
  return same ? null : { protocol: p.protocol, host: p.host, port: String(p.port), tls: p.tls };
}
