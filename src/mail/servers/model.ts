import net from 'node:net';

/**
 * SMTP server configurations: the reference form's fields, stored as documents with versions (every update
 * is compare-and-set), the password sealed with the keyring. Servers may also come from a JSON file
 * (MAILGATE_SMTP_SERVERS_FILE, secrets by reference), shown read-only and never returned with secrets.
 * The environment overrides MAILGATE_SMTP_HOST/PORT/LOCALHOST win over every server.
 *
 * Mutable run-time state lives beside the configuration, not in it: the outgoing-mail switch and the default
 * server in `settings/mail`, a pause (credentials rejected) in `smtp_server_pauses/<id>`, so a worker pausing a
 * server never races an admin editing it, and file-defined servers can be paused too.
 */

export const SERVERS = 'smtp_servers';
export const PAUSES = 'smtp_server_pauses';
export const SETTINGS = 'settings';
export const SETTINGS_ID = 'mail';
export const SERVERS_CHANNEL = 'smtp-servers';
/** Published on SERVERS_CHANNEL when the settings document changes. */
export const SETTINGS_MESSAGE = '#settings';

export const DEFAULT_TIMEOUT_MS = 10_000;

export type ServiceProvider = 'custom' | 'gmail' | 'yahoo' | 'microsoft';
/** `graph` (Microsoft Graph sendMail) and `gmail_api` (Gmail messages.send) send over HTTPS: host and port are not used. */
export type Protocol = 'smtp' | 'smtps' | 'graph' | 'gmail_api';
export type SmtpProtocol = 'smtp' | 'smtps';
export type ApiProtocol = 'graph' | 'gmail_api';

export function isApiProtocol(protocol: string): protocol is ApiProtocol {
  return protocol === 'graph' || protocol === 'gmail_api';
}
export type AuthMethod = 'none' | 'basic' | 'oauth2';

/** The stored document. */
export interface SmtpServerDoc {
  name: string;
  description: string | null;
  fromAddress: string;
  emailPrefix: string | null;
  serviceProvider: ServiceProvider;
  protocol: Protocol;
  host: string;
  port: number | null;
  timeoutMs: number | null;
  /** Messages per minute across all instances; null (or absent on servers stored before it existed) = no limit. */
  rateLimitPerMinute?: number | null;
  tls: boolean;
  authMethod: AuthMethod;
  oauthIntegrationId: string | null;
  username: string | null;
  /** Further addresses this server may send as (shared mailboxes, send-as rights); absent on older documents. */
  sendAs?: string[];
  /** Sealed; null when none. */
  password: string | null;
  /** Grows whenever the password changes (part of the transport fingerprint). */
  passwordVersion: number;
  createdAt: string;
  updatedAt: string;
}

export interface PauseDoc {
  reason: string;
  code: string;
  at: string;
}

export interface SettingsDoc {
  outgoingEnabled: boolean;
  defaultServerId: string | null;
}

/** What the API and pages show: never a password. */
export interface SmtpServerView extends Omit<SmtpServerDoc, 'password'> {
  id: string;
  version: number;
  source: 'ui' | 'file';
  readOnly: boolean;
  hasPassword: boolean;
  isDefault: boolean;
  paused: PauseDoc | null;
  /** Host, port and EHLO name actually used, after the environment overrides. */
  effective: { host: string; port: number; ehloName: string | null; timeoutMs: number };
  /** Names of the environment variables that override this server's form values. */
  overrides: string[];
}

/** Everything the transport needs, password opened, overrides applied. Never leaves the mail module. */
export interface ResolvedServer {
  id: string;
  version: number;
  source: 'ui' | 'file';
  name: string;
  fromAddress: string;
  emailPrefix: string | null;
  protocol: Protocol;
  host: string;
  port: number;
  /** 0 = no timeout. */
  timeoutMs: number;
  /** Absent or null: no per-minute limit. */
  rateLimitPerMinute?: number | null | undefined;
  tls: boolean;
  authMethod: AuthMethod;
  oauthIntegrationId: string | null;
  username: string | null;
  /** Addresses beside fromAddress and username that the server may send as. */
  sendAs?: string[];
  password: string | null;
  passwordVersion: number;
  ehloName: string | null;
  /** A test of unsaved values runs under its own id; its OAuth grant is still the stored server's. */
  grantServerId?: string;
}

export function defaultPort(protocol: Protocol): number {
  if (isApiProtocol(protocol)) return 443;
  return protocol === 'smtps' ? 465 : 25;
}

/** Blank → 10000; 0 or negative → 0, meaning wait forever. */
export function effectiveTimeout(timeoutMs: number | null): number {
  if (timeoutMs === null) return DEFAULT_TIMEOUT_MS;
  return timeoutMs <= 0 ? 0 : timeoutMs;
}

export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  if (h === 'localhost' || h.endsWith('.localhost') || h === '::1') return true;
  return net.isIPv4(h) && h.startsWith('127.');
}

/**
 * AUTH is never sent in plaintext: a server with authentication needs implicit TLS (smtps) or STARTTLS
 * required (tls), except on a loopback host, where the traffic never leaves the machine (a local relay).
 */
export function plaintextAuthProblem(s: {
  protocol: Protocol;
  tls: boolean;
  authMethod: AuthMethod;
  host: string;
}): string | null {
  if (s.authMethod === 'none' || s.protocol === 'smtps' || s.tls || isApiProtocol(s.protocol)) return null;
  if (isLoopbackHost(s.host)) return null;
  return 'authentication needs TLS: tick TLS (STARTTLS) or use protocol smtps; mailgate never sends credentials in plaintext except to a loopback host';
}
