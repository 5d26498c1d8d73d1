import type { KeyPolicy } from './key-policy.js';
/** Who does things in mailgate: shared by the audit log, the web layer and every service that records events. */

export type Role = 'sysadmin' | 'admin';
export type ApiScope = 'send' | 'admin';

export type Actor =
  | { type: 'user'; id: string; email: string; role: Role }
  | { type: 'api_key'; id: string; name: string; scopes: ApiScope[]; policy?: KeyPolicy }
  | { type: 'cli'; id: string }
  | { type: 'system'; id: string };

export interface AuditEventInput {
  actor: Actor;
  /** Dotted verb, e.g. `auth.login`, `smtp_server.update`, `oauth.authorize`, `keys.rotate`. */
  action: string;
  /** What it was done to, e.g. `smtp_server:srv_123`. */
  target?: string;
  outcome: 'success' | 'failure';
  /** Client IP for requests. */
  ip?: string;
  /** Non-secret facts about the event (changed field names, mailbox address, error code). Never a secret value. */
  detail?: Record<string, string | number | boolean | null | string[]>;
}

export interface AuditRecorder {
  record(event: AuditEventInput): Promise<void>;
}
