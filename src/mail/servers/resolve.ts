import type { Config } from '../../config.js';
import { defaultPort, effectiveTimeout, type ResolvedServer, type SmtpServerDoc } from './model.js';

type Overrides = Pick<Config, 'MAILGATE_SMTP_HOST' | 'MAILGATE_SMTP_PORT' | 'MAILGATE_SMTP_LOCALHOST'>;

/** Host, port, EHLO name and timeout actually used, after the environment overrides, and which of them apply. */
export function effectiveSettings(doc: SmtpServerDoc, config: Overrides) {
  const overrides: string[] = [];
  if (config.MAILGATE_SMTP_HOST) overrides.push('MAILGATE_SMTP_HOST');
  if (config.MAILGATE_SMTP_PORT) overrides.push('MAILGATE_SMTP_PORT');
  if (config.MAILGATE_SMTP_LOCALHOST) overrides.push('MAILGATE_SMTP_LOCALHOST');
  return {
    effective: {
      host: config.MAILGATE_SMTP_HOST ?? doc.host,
      port: config.MAILGATE_SMTP_PORT ?? doc.port ?? defaultPort(doc.protocol),
      ehloName: config.MAILGATE_SMTP_LOCALHOST ?? null,
      timeoutMs: effectiveTimeout(doc.timeoutMs),
    },
    overrides,
  };
}

/** The server as the transport needs it: password opened, overrides applied. */
export function resolvedServer(
  server: { id: string; version: number; source: 'ui' | 'file'; doc: SmtpServerDoc; password: string | null },
  config: Overrides,
): ResolvedServer {
  const { id, version, source, doc, password } = server;
  const { effective: eff } = effectiveSettings(doc, config);
  return {
    id,
    version,
    source,
    name: doc.name,
    fromAddress: doc.fromAddress,
    emailPrefix: doc.emailPrefix,
    protocol: doc.protocol,
    host: eff.host,
    port: eff.port,
    timeoutMs: eff.timeoutMs,
    rateLimitPerMinute: doc.rateLimitPerMinute ?? null,
    tls: doc.tls,
    authMethod: doc.authMethod,
    oauthIntegrationId: doc.oauthIntegrationId,
    username: doc.username,
    sendAs: doc.sendAs ?? [],
    password,
    passwordVersion: doc.passwordVersion,
    ehloName: eff.ehloName,
  };
}
