import type { Actor, AuditRecorder } from '../../admin/types.js';
import type { Config } from '../../config.js';
import type { Keyring } from '../../crypto/keyring.js';
import type { Logger } from '../../log.js';
import type { Doc, Store } from '../../store/store.js';
import type { PauseDoc, ResolvedServer, SmtpServerDoc, SmtpServerView } from './model.js';
import type { ServerPage } from './pages.js';
import type { CreateServerInput, UpdateServerInput } from './validation.js';

/** What the SMTP servers service (service.ts) offers the rest of mailgate. */

export interface MailSettingsView {
  outgoingEnabled: boolean;
  /** MAILGATE_SEND_DISABLED: holds every message whatever the switch says. */
  disabledByEnvironment: boolean;
  defaultServerId: string | null;
}

export interface AuditContext {
  actor: Actor;
  ip?: string;
}

export interface SmtpServers {
  list(): Promise<SmtpServerView[]>;
  /** A page of servers in id order, optionally searched (pages.ts). */
  page(options: { limit: number; cursor?: string | undefined; search?: string | undefined }): Promise<ServerPage>;
  /** Up to `limit` paused servers (read from the pauses, not from every server). */
  paused(limit: number): Promise<SmtpServerView[]>;
  /** Ids of the servers defined in MAILGATE_SMTP_SERVERS_FILE (read-only). */
  fileServerIds(): string[];
  get(id: string): Promise<SmtpServerView>;
  /** The view of a server document already read (a listed page), without reading the document again. */
  viewOf(doc: Doc<SmtpServerDoc>): Promise<SmtpServerView>;
  create(input: CreateServerInput, ctx: AuditContext): Promise<SmtpServerView>;
  update(id: string, input: UpdateServerInput, ctx: AuditContext): Promise<SmtpServerView>;
  remove(id: string, ctx: AuditContext): Promise<void>;
  /** The server ready for sending (cached; invalidated on every instance when it changes). */
  resolve(id: string): Promise<ResolvedServer | null>;
  /** The default server's id: the one marked default, else the only/first server. */
  defaultServerId(): Promise<string | null>;
  settings(): Promise<MailSettingsView>;
  /** Whether messages may be sent now (switch on and not disabled by the environment). */
  sendingEnabled(): Promise<boolean>;
  setOutgoingEnabled(enabled: boolean, ctx: AuditContext): Promise<MailSettingsView>;
  pause(id: string, pause: { reason: string; code: string }): Promise<void>;
  unpause(id: string): Promise<boolean>;
  pauseOf(id: string): Promise<PauseDoc | null>;
  /** Whether the server is paused, read from the store (not the cache). */
  isPausedNow(id: string): Promise<boolean>;
  /** Local listeners: a server's configuration or pause changed (after the write). */
  onChange(listener: (id: string) => void): void;
  /** Local listeners: credentials of a server changed (password, user, method) — held mail may go again. */
  onCredentialsChanged(listener: (id: string) => void | Promise<void>): void;
  /** Local listeners: outgoing mail was switched on. */
  onSendingEnabled(listener: () => void | Promise<void>): void;
  start(): Promise<void>;
  stop(): Promise<void>;
}

export interface SmtpServersDeps {
  store: Store;
  keyring: Keyring;
  config: Config;
  audit: AuditRecorder;
  log: Logger;
  env?: Readonly<Record<string, string | undefined>>;
  /** The provider of an OAuth integration (Graph needs Microsoft, the Gmail API Google), or null if none. */
  integrationProvider?: (id: string) => Promise<string | null>;
}
