import { randomBytes } from 'node:crypto';
import type { Config } from '../../config.js';
import type { ErrorDetail } from '../../errors.js';
import type { ResolvedServer, SmtpServerDoc, SmtpServerView } from './model.js';
import { PROVIDER_PRESETS } from './presets.js';
import { resolvedServer } from './resolve.js';
import { checkServer, invalid, type TestServerInput } from './validation.js';

/**
 * A server built from the values in the form, never saved, for Test connection and Send test email. With an
 * existing server (`stored`) blank fields keep its values and its stored password is reused, except that a
 * stored password never goes to another host than the one it was saved for (the same rule as Update).
 */

type Overrides = Pick<Config, 'MAILGATE_SMTP_HOST' | 'MAILGATE_SMTP_PORT' | 'MAILGATE_SMTP_LOCALHOST'>;

export interface StoredForDraft {
  view: SmtpServerView;
  /** The opened password, or null. */
  password: string | null;
}

export function draftServer(input: TestServerInput, stored: StoredForDraft | null, config: Overrides): ResolvedServer {
  const s = stored?.view;
  const provider = stored ? 'custom' : (input.serviceProvider ?? 'custom');
  const preset = provider === 'custom' ? null : PROVIDER_PRESETS[provider];
  const authMethod = input.authMethod ?? s?.authMethod ?? 'none';
  const doc: SmtpServerDoc = {
    name: input.name ?? s?.name ?? 'Test',
    description: null,
    fromAddress: input.fromAddress ?? s?.fromAddress ?? '',
    emailPrefix: input.emailPrefix === undefined ? (s?.emailPrefix ?? null) : input.emailPrefix,
    serviceProvider: provider,
    protocol: preset?.protocol ?? input.protocol ?? s?.protocol ?? 'smtp',
    host: preset?.host ?? input.host ?? s?.host ?? '',
    port: preset?.port ?? (input.port === undefined ? (s?.port ?? null) : input.port),
    timeoutMs: input.timeoutMs === undefined ? (s?.timeoutMs ?? null) : input.timeoutMs,
    tls: preset?.tls ?? input.tls ?? s?.tls ?? false,
    authMethod,
    oauthIntegrationId: authMethod === 'oauth2' ? (input.oauthIntegrationId ?? s?.oauthIntegrationId ?? null) : null,
    username: input.username === undefined ? (s?.username ?? null) : input.username,
    password: null,
    passwordVersion: 0,
    createdAt: '',
    updatedAt: '',
  };
  let password: string | null = null;
  if (authMethod === 'basic') {
    if (input.password !== undefined) password = input.password;
    else if (stored?.password) {
      if (doc.host !== s?.host) {
        const details: ErrorDetail[] = [{ field: 'password', message: 'retype the password for the new host' }];
        throw invalid(details);
      }
      password = stored.password;
    }
  }
  // A mailbox's tokens go only to the host they were authorized for (as on Update: Disconnect first).
  if (s && authMethod === 'oauth2' && doc.host !== s.host) {
    throw invalid([
      { field: 'host', message: 'this server holds an authorized mailbox: its tokens never go to another host' },
    ]);
  }
  checkServer({ ...doc, password });
  const id = `${s?.id ?? 'new'}-test-${randomBytes(6).toString('hex')}`;
  return {
    ...resolvedServer({ id, version: 0, source: 'ui', doc, password }, config),
    ...(s && authMethod === 'oauth2' ? { grantServerId: s.id } : {}),
  };
}
