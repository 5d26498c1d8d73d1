import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { z } from 'zod';
import type { Actor, AuditRecorder } from '../admin/types.js';
import type { Config } from '../config.js';
import type { Keyring } from '../crypto/keyring.js';
import { AppError, type ErrorDetail } from '../errors.js';
import type { Logger } from '../log.js';
import { VersionConflictError, type Doc, type Store } from '../store/store.js';
import { emailAddress, headerText } from './compose.js';

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
const SETTINGS = 'settings';
const SETTINGS_ID = 'mail';
export const SERVERS_CHANNEL = 'smtp-servers';
/** Published on SERVERS_CHANNEL when the settings document changes. */
export const SETTINGS_MESSAGE = '#settings';

export const DEFAULT_TIMEOUT_MS = 10_000;

export type ServiceProvider = 'custom' | 'gmail' | 'yahoo' | 'microsoft';
export type Protocol = 'smtp' | 'smtps';
export type AuthMethod = 'none' | 'basic' | 'oauth2';

export const PROVIDER_PRESETS: Record<Exclude<ServiceProvider, 'custom'>, { host: string; port: number; protocol: Protocol; tls: boolean; label: string }> = {
  gmail: { label: 'Gmail / Google Workspace', host: 'smtp.gmail.com', port: 465, protocol: 'smtps', tls: false },
  yahoo: { label: 'Yahoo! Mail', host: 'smtp.mail.yahoo.com', port: 465, protocol: 'smtps', tls: false },
  microsoft: { label: 'Microsoft 365 / Outlook', host: 'smtp.office365.com', port: 587, protocol: 'smtp', tls: true },
};

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
  tls: boolean;
  authMethod: AuthMethod;
  oauthIntegrationId: string | null;
  username: string | null;
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

interface SettingsDoc {
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
  tls: boolean;
  authMethod: AuthMethod;
  oauthIntegrationId: string | null;
  username: string | null;
  password: string | null;
  passwordVersion: number;
  ehloName: string | null;
}

export function defaultPort(protocol: Protocol): number {
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
export function plaintextAuthProblem(s: { protocol: Protocol; tls: boolean; authMethod: AuthMethod; host: string }): string | null {
  if (s.authMethod === 'none' || s.protocol === 'smtps' || s.tls) return null;
  if (isLoopbackHost(s.host)) return null;
  return 'authentication needs TLS: tick TLS (STARTTLS) or use protocol smtps; mailgate never sends credentials in plaintext except to a loopback host';
}

// ---------------------------------------------------------------------------------------------- input

const HOST = /^(?=.{1,253}$)(?!-)[A-Za-z0-9-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*$/;
const hostName = z.string().refine((v) => HOST.test(v) || net.isIP(v.replace(/^\[|\]$/g, '')) !== 0, 'expected a host name or an IP address');
const blankToUndefined = (v: unknown) => (typeof v === 'string' ? (v.trim() === '' ? undefined : v.trim()) : v);
const blankToNull = (v: unknown) => (typeof v === 'string' ? (v.trim() === '' ? null : v.trim()) : v);
const text = <S extends z.ZodType>(inner: S) => z.preprocess(blankToUndefined, inner);
const nullableText = <S extends z.ZodType>(inner: S) => z.preprocess(blankToNull, inner.nullable());
const numberOrNull = (inner: z.ZodNumber) =>
  z.preprocess((v) => (typeof v === 'string' ? (v.trim() === '' ? null : Number(v.trim())) : v), inner.nullable());
const checkbox = z.preprocess((v) => v === true || v === 'on' || v === 'true' || v === '1', z.boolean());
const optionalCheckbox = z.preprocess((v) => (v === undefined ? undefined : v === true || v === 'on' || v === 'true' || v === '1'), z.boolean().optional());

const common = {
  name: text(z.string().min(1, 'required').max(100, 'at most 100 characters')),
  description: nullableText(z.string().max(500, 'at most 500 characters')).optional(),
  fromAddress: text(emailAddress),
  emailPrefix: nullableText(headerText(60, 'emailPrefix')).optional(),
  protocol: text(z.enum(['smtp', 'smtps'], 'choose smtp or smtps')).optional(),
  host: text(hostName).optional(),
  port: numberOrNull(z.number('expected a number').int('expected a whole number').min(1, 'expected 1-65535').max(65535, 'expected 1-65535')).optional(),
  timeoutMs: numberOrNull(z.number('expected a number of milliseconds').int('expected whole milliseconds').max(3_600_000, 'at most 3600000 (one hour)')).optional(),
  authMethod: text(z.enum(['none', 'basic', 'oauth2'], 'choose none, basic or oauth2')).optional(),
  oauthIntegrationId: nullableText(z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'not a valid integration id')).optional(),
  username: nullableText(headerText(254, 'username')).optional(),
  // Passwords are not trimmed: spaces can be part of them.
  password: z.preprocess((v) => (v === '' ? undefined : v), z.string().max(1024, 'at most 1024 characters').optional()),
  isDefault: optionalCheckbox,
};

export const createServerInput = z.strictObject({
  ...common,
  serviceProvider: text(z.enum(['custom', 'gmail', 'yahoo', 'microsoft'], 'choose custom, gmail, yahoo or microsoft')).optional(),
  tls: checkbox.optional(),
});

export const updateServerInput = z.strictObject({
  ...Object.fromEntries(Object.entries(common).map(([k, v]) => [k, v.optional()])) as { [K in keyof typeof common]: z.ZodOptional<(typeof common)[K]> },
  tls: optionalCheckbox,
  changePassword: optionalCheckbox,
  /** The version the editor saw; a mismatch is a conflict (someone else saved in between). */
  version: z.preprocess((v) => (typeof v === 'string' && v.trim() !== '' ? Number(v) : v), z.number().int().min(1).optional()),
});

export type CreateServerInput = z.output<typeof createServerInput>;
export type UpdateServerInput = z.output<typeof updateServerInput>;

function invalid(details: ErrorDetail[]): AppError {
  return new AppError('validation_failed', { message: details.map((d) => `${d.field}: ${d.message}`).join('; '), details });
}

/** Cross-field rules shared by create and update, on the merged result. */
function checkServer(doc: Omit<SmtpServerDoc, 'createdAt' | 'updatedAt' | 'passwordVersion'>): void {
  const details: ErrorDetail[] = [];
  if (!doc.host) details.push({ field: 'host', message: 'required' });
  if (doc.authMethod === 'basic') {
    if (!doc.username) details.push({ field: 'username', message: 'required for basic authentication' });
    if (!doc.password) details.push({ field: 'password', message: 'required for basic authentication' });
  }
  if (doc.authMethod === 'oauth2' && !doc.oauthIntegrationId) details.push({ field: 'oauthIntegrationId', message: 'choose the OAuth 2.0 integration' });
  if (doc.host) {
    const problem = plaintextAuthProblem(doc);
    if (problem) details.push({ field: 'tls', message: problem });
  }
  if (details.length) throw invalid(details);
}

// ---------------------------------------------------------------------------------------------- file-defined servers

const fileServer = z.strictObject({
  id: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'expected 1-64 of A-Z a-z 0-9 _ -'),
  name: z.string().min(1).max(100),
  description: z.string().max(500).nullable().optional(),
  fromAddress: emailAddress,
  emailPrefix: headerText(60, 'emailPrefix').nullable().optional(),
  protocol: z.enum(['smtp', 'smtps']).default('smtp'),
  host: hostName,
  port: z.number().int().min(1).max(65535).nullable().optional(),
  timeoutMs: z.number().int().max(3_600_000).nullable().optional(),
  tls: z.boolean().default(false),
  authMethod: z.enum(['none', 'basic', 'oauth2']).default('none'),
  oauthIntegrationId: z.string().nullable().optional(),
  username: z.string().max(254).nullable().optional(),
  passwordEnv: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/).optional(),
  passwordFile: z.string().min(1).optional(),
  isDefault: z.boolean().optional(),
});
const serversFile = z.union([z.array(fileServer), z.strictObject({ servers: z.array(fileServer) })]);

interface FileDefined {
  doc: SmtpServerDoc;
  /** Plaintext, kept in memory only (it came from the environment or a secret file). */
  password: string | null;
  isDefault: boolean;
}

/** Reads MAILGATE_SMTP_SERVERS_FILE; every problem is reported at once. */
export function loadServersFile(file: string, env: Readonly<Record<string, string | undefined>> = process.env): Map<string, FileDefined> {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new Error(`MAILGATE_SMTP_SERVERS_FILE: cannot read ${file} as JSON (${(err as Error).message})`, { cause: err });
  }
  const parsed = serversFile.safeParse(raw);
  if (!parsed.success) {
    throw new Error(`MAILGATE_SMTP_SERVERS_FILE ${file}:\n${parsed.error.issues.map((i) => `  - ${i.path.join('.')}: ${i.message}`).join('\n')}`);
  }
  const list = Array.isArray(parsed.data) ? parsed.data : parsed.data.servers;
  const out = new Map<string, FileDefined>();
  const problems: string[] = [];
  for (const s of list) {
    if (out.has(s.id)) problems.push(`server "${s.id}" appears twice`);
    let password: string | null = null;
    if (s.passwordEnv && s.passwordFile) problems.push(`server "${s.id}": give passwordEnv or passwordFile, not both`);
    else if (s.passwordEnv) {
      password = env[s.passwordEnv] ?? null;
      if (!password) problems.push(`server "${s.id}": environment variable ${s.passwordEnv} is not set`);
    } else if (s.passwordFile) {
      try {
        password = readFileSync(s.passwordFile, 'utf8').replace(/\r?\n$/, '');
      } catch (err) {
        problems.push(`server "${s.id}": cannot read passwordFile (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
      }
    }
    const doc: SmtpServerDoc = {
      name: s.name,
      description: s.description ?? null,
      fromAddress: s.fromAddress,
      emailPrefix: s.emailPrefix ?? null,
      serviceProvider: 'custom',
      protocol: s.protocol,
      host: s.host,
      port: s.port ?? null,
      timeoutMs: s.timeoutMs ?? null,
      tls: s.tls,
      authMethod: s.authMethod,
      oauthIntegrationId: s.oauthIntegrationId ?? null,
      username: s.username ?? null,
      password: null,
      passwordVersion: 1,
      createdAt: new Date(0).toISOString(),
      updatedAt: new Date(0).toISOString(),
    };
    try {
      checkServer({ ...doc, password });
    } catch (err) {
      problems.push(`server "${s.id}": ${(err as Error).message}`);
    }
    out.set(s.id, { doc, password, isDefault: s.isDefault ?? false });
  }
  if (problems.length) throw new Error(`MAILGATE_SMTP_SERVERS_FILE ${file}:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
  return out;
}

// ---------------------------------------------------------------------------------------------- service

export interface SmtpServersDeps {
  store: Store;
  keyring: Keyring;
  config: Config;
  audit: AuditRecorder;
  log: Logger;
  env?: Readonly<Record<string, string | undefined>>;
}

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
  get(id: string): Promise<SmtpServerView>;
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
  /** Local listeners: a server's configuration or pause changed (after the write). */
  onChange(listener: (id: string) => void): void;
  /** Local listeners: credentials of a server changed (password, user, method) — held mail may go again. */
  onCredentialsChanged(listener: (id: string) => void | Promise<void>): void;
  /** Local listeners: outgoing mail was switched on. */
  onSendingEnabled(listener: () => void | Promise<void>): void;
  start(): Promise<void>;
  stop(): Promise<void>;
}

function newServerId(): string {
  return `srv_${randomBytes(9).toString('base64url').replace(/[-_]/g, 'x')}`;
}

export function createSmtpServers(deps: SmtpServersDeps): SmtpServers {
  const { store, keyring, config, audit, log } = deps;
  const fileServers = config.MAILGATE_SMTP_SERVERS_FILE ? loadServersFile(config.MAILGATE_SMTP_SERVERS_FILE, deps.env) : new Map<string, FileDefined>();
  const resolvedCache = new Map<string, Promise<ResolvedServer | null>>();
  let settingsCache: Promise<Doc<SettingsDoc> | null> | null = null;
  let defaultCache: Promise<string | null> | null = null;
  const pauseCache = new Map<string, Promise<PauseDoc | null>>();
  const changeListeners: Array<(id: string) => void> = [];
  const credentialListeners: Array<(id: string) => void | Promise<void>> = [];
  const enabledListeners: Array<() => void | Promise<void>> = [];
  let unsubscribe: (() => Promise<void>) | null = null;

  const sealCtx = (id: string) => ({ collection: SERVERS, id, field: 'password' });

  function forget(message: string): void {
    defaultCache = null;
    if (message === SETTINGS_MESSAGE) {
      settingsCache = null;
      return;
    }
    resolvedCache.delete(message);
    pauseCache.delete(message);
    for (const l of changeListeners) l(message);
  }

  async function announce(message: string): Promise<void> {
    forget(message);
    // The file store delivers in-process too; forgetting twice is harmless.
    await store.publish(SERVERS_CHANNEL, message);
  }

  async function readSettings(): Promise<Doc<SettingsDoc> | null> {
    settingsCache ??= store.get<SettingsDoc>(SETTINGS, SETTINGS_ID).catch((err: unknown) => {
      settingsCache = null;
      throw err;
    });
    return settingsCache;
  }

  async function updateSettings(change: (s: SettingsDoc) => SettingsDoc): Promise<SettingsDoc> {
    for (let attempt = 0; ; attempt++) {
      const current = await store.get<SettingsDoc>(SETTINGS, SETTINGS_ID);
      const value = change(current?.value ?? { outgoingEnabled: true, defaultServerId: null });
      try {
        await store.put(SETTINGS, SETTINGS_ID, value, { ifVersion: current?.version ?? 0 });
        await announce(SETTINGS_MESSAGE);
        return value;
      } catch (err) {
        if (!(err instanceof VersionConflictError) || attempt >= 5) throw err;
      }
    }
  }

  async function defaultServerId(): Promise<string | null> {
    defaultCache ??= findDefaultServerId().catch((err: unknown) => {
      defaultCache = null;
      throw err;
    });
    return defaultCache;
  }

  async function findDefaultServerId(): Promise<string | null> {
    const settings = await readSettings();
    const chosen = settings?.value.defaultServerId ?? null;
    if (chosen && (fileServers.has(chosen) || (await store.get(SERVERS, chosen)))) return chosen;
    for (const [id, f] of fileServers) if (f.isDefault) return id;
    const first = (await store.list<SmtpServerDoc>(SERVERS))[0];
    return first?.id ?? [...fileServers.keys()][0] ?? null;
  }

  function effective(doc: SmtpServerDoc) {
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

  async function pauseOf(id: string): Promise<PauseDoc | null> {
    let cached = pauseCache.get(id);
    if (!cached) {
      cached = store.get<PauseDoc>(PAUSES, id).then((d) => d?.value ?? null);
      pauseCache.set(id, cached);
      cached.catch(() => pauseCache.delete(id));
    }
    return cached;
  }

  async function view(id: string, doc: SmtpServerDoc, version: number, source: 'ui' | 'file', hasPassword: boolean, defaultId: string | null): Promise<SmtpServerView> {
    const { password: _password, ...rest } = doc;
    return {
      id,
      ...rest,
      version,
      source,
      readOnly: source === 'file',
      hasPassword,
      isDefault: id === defaultId,
      paused: await pauseOf(id),
      ...effective(doc),
    };
  }

  async function getDoc(id: string): Promise<Doc<SmtpServerDoc>> {
    if (fileServers.has(id)) throw new AppError('read_only');
    const doc = await store.get<SmtpServerDoc>(SERVERS, id);
    if (!doc) throw new AppError('not_found', { message: `No SMTP server ${id}.` });
    return doc;
  }

  async function recordAudit(ctx: AuditContext, action: string, target: string, outcome: 'success' | 'failure', detail?: Record<string, string | number | boolean | null | string[]>): Promise<void> {
    await audit.record({ actor: ctx.actor, action, target, outcome, ...(ctx.ip ? { ip: ctx.ip } : {}), ...(detail ? { detail } : {}) });
  }

  async function notifyCredentials(id: string): Promise<void> {
    for (const l of credentialListeners) {
      try {
        await l(id);
      } catch (err) {
        log.error({ err, serverId: id }, 'releasing held messages failed');
      }
    }
  }

  const service: SmtpServers = {
    async list() {
      const defaultId = await defaultServerId();
      const out: SmtpServerView[] = [];
      for (const [id, f] of fileServers) out.push(await view(id, f.doc, 1, 'file', f.password !== null, defaultId));
      for (const d of await store.list<SmtpServerDoc>(SERVERS)) out.push(await view(d.id, d.value, d.version, 'ui', d.value.password !== null, defaultId));
      return out.sort((a, b) => a.name.localeCompare(b.name) || a.id.localeCompare(b.id));
    },

    async get(id) {
      const defaultId = await defaultServerId();
      const f = fileServers.get(id);
      if (f) return view(id, f.doc, 1, 'file', f.password !== null, defaultId);
      const d = await store.get<SmtpServerDoc>(SERVERS, id);
      if (!d) throw new AppError('not_found', { message: `No SMTP server ${id}.` });
      return view(id, d.value, d.version, 'ui', d.value.password !== null, defaultId);
    },

    async create(input, ctx) {
      const id = newServerId();
      const provider = input.serviceProvider ?? 'custom';
      const preset = provider === 'custom' ? null : PROVIDER_PRESETS[provider];
      const now = new Date().toISOString();
      const base = {
        name: input.name,
        description: input.description ?? null,
        fromAddress: input.fromAddress,
        emailPrefix: input.emailPrefix ?? null,
        serviceProvider: provider,
        protocol: preset?.protocol ?? input.protocol ?? 'smtp',
        host: preset?.host ?? input.host ?? '',
        port: preset?.port ?? input.port ?? null,
        timeoutMs: input.timeoutMs ?? null,
        tls: preset?.tls ?? input.tls ?? false,
        authMethod: input.authMethod ?? 'none',
        oauthIntegrationId: input.authMethod === 'oauth2' ? (input.oauthIntegrationId ?? null) : null,
        username: input.username ?? null,
      } satisfies Partial<SmtpServerDoc>;
      const password = base.authMethod === 'basic' ? (input.password ?? null) : null;
      checkServer({ ...base, password });
      const doc: SmtpServerDoc = { ...base, password: password === null ? null : keyring.seal(password, sealCtx(id)), passwordVersion: 1, createdAt: now, updatedAt: now };
      await store.put(SERVERS, id, doc, { ifVersion: 0 });
      if (input.isDefault) await updateSettings((s) => ({ ...s, defaultServerId: id }));
      await announce(id);
      await recordAudit(ctx, 'smtp_server.create', `smtp_server:${id}`, 'success', {
        fields: Object.keys(input).filter((k) => (input as Record<string, unknown>)[k] !== undefined),
        host: doc.host,
        authMethod: doc.authMethod,
      });
      return service.get(id);
    },

    async update(id, input, ctx) {
      const current = await getDoc(id);
      if (input.version !== undefined && input.version !== current.version) throw new AppError('conflict');
      const before = current.value;
      const next: SmtpServerDoc = { ...before };
      const changed: string[] = [];
      const set = <K extends keyof SmtpServerDoc>(key: K, value: SmtpServerDoc[K] | undefined) => {
        if (value === undefined || value === before[key]) return;
        next[key] = value;
        changed.push(key);
      };
      set('name', input.name);
      set('description', input.description);
      set('fromAddress', input.fromAddress);
      set('emailPrefix', input.emailPrefix);
      set('protocol', input.protocol);
      set('host', input.host);
      set('port', input.port);
      set('timeoutMs', input.timeoutMs);
      set('tls', input.tls);
      set('authMethod', input.authMethod);
      set('oauthIntegrationId', input.oauthIntegrationId);
      set('username', input.username);
      if (next.authMethod !== 'oauth2') next.oauthIntegrationId = null;
      let newPassword: string | null | undefined;
      if (input.changePassword) newPassword = input.password ?? null;
      else if (input.password !== undefined) {
        throw invalid([{ field: 'password', message: 'tick changePassword to change the password (it is kept otherwise)' }]);
      }
      // Otherwise whoever may edit the server could point it at their own host and receive the write-only password.
      if (newPassword === undefined && before.password !== null && next.authMethod === 'basic' && next.host !== before.host) {
        throw invalid([{ field: 'password', message: 'the host changed: tick changePassword and enter the password again (a stored password is never sent to another host)' }]);
      }
      const plaintextForCheck = newPassword !== undefined ? newPassword : before.password !== null ? '(kept)' : null;
      checkServer({ ...next, password: next.authMethod === 'basic' ? plaintextForCheck : null });
      if (newPassword !== undefined) {
        next.password = newPassword === null ? null : keyring.seal(newPassword, sealCtx(id));
        next.passwordVersion = before.passwordVersion + 1;
        changed.push('password');
      }
      if (next.authMethod !== 'basic' && next.password !== null) {
        next.password = null;
        next.passwordVersion = before.passwordVersion + 1;
        if (!changed.includes('password')) changed.push('password');
      }
      const settings = await readSettings();
      const defaultChange = input.isDefault !== undefined && input.isDefault !== ((settings?.value.defaultServerId ?? null) === id);
      if (changed.length === 0 && !defaultChange) return service.get(id);
      if (changed.length > 0) {
        next.updatedAt = new Date().toISOString();
        await store.put(SERVERS, id, next, { ifVersion: current.version });
      }
      if (defaultChange) {
        await updateSettings((s) => ({ ...s, defaultServerId: input.isDefault ? id : s.defaultServerId === id ? null : s.defaultServerId }));
        changed.push('isDefault');
      }
      await announce(id);
      await recordAudit(ctx, 'smtp_server.update', `smtp_server:${id}`, 'success', { fields: changed });
      if (changed.some((f) => ['password', 'username', 'authMethod', 'oauthIntegrationId', 'host', 'port', 'protocol', 'tls'].includes(f))) {
        await service.unpause(id);
        await notifyCredentials(id);
      }
      return service.get(id);
    },

    async remove(id, ctx) {
      await getDoc(id);
      await store.delete(SERVERS, id);
      await store.delete(PAUSES, id);
      const settings = await readSettings();
      if (settings?.value.defaultServerId === id) await updateSettings((s) => ({ ...s, defaultServerId: null }));
      await announce(id);
      await recordAudit(ctx, 'smtp_server.delete', `smtp_server:${id}`, 'success');
    },

    async resolve(id) {
      let cached = resolvedCache.get(id);
      if (!cached) {
        cached = (async (): Promise<ResolvedServer | null> => {
          const f = fileServers.get(id);
          let doc: SmtpServerDoc;
          let version = 1;
          let password: string | null;
          let source: 'ui' | 'file' = 'ui';
          if (f) {
            doc = f.doc;
            password = f.password;
            source = 'file';
          } else {
            const d = await store.get<SmtpServerDoc>(SERVERS, id);
            if (!d) return null;
            doc = d.value;
            version = d.version;
            password = d.value.password === null ? null : keyring.open(d.value.password, sealCtx(id));
          }
          const { effective: eff } = effective(doc);
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
            tls: doc.tls,
            authMethod: doc.authMethod,
            oauthIntegrationId: doc.oauthIntegrationId,
            username: doc.username,
            password,
            passwordVersion: doc.passwordVersion,
            ehloName: eff.ehloName,
          };
        })();
        resolvedCache.set(id, cached);
        cached.catch(() => resolvedCache.delete(id));
      }
      return cached;
    },

    defaultServerId,

    async settings() {
      const s = await readSettings();
      return {
        outgoingEnabled: s?.value.outgoingEnabled ?? true,
        disabledByEnvironment: config.MAILGATE_SEND_DISABLED,
        defaultServerId: await defaultServerId(),
      };
    },

    async sendingEnabled() {
      if (config.MAILGATE_SEND_DISABLED) return false;
      const s = await readSettings();
      return s?.value.outgoingEnabled ?? true;
    },

    async setOutgoingEnabled(enabled, ctx) {
      const before = (await readSettings())?.value.outgoingEnabled ?? true;
      await updateSettings((s) => ({ ...s, outgoingEnabled: enabled }));
      await recordAudit(ctx, enabled ? 'mail.outgoing_enable' : 'mail.outgoing_disable', 'settings:mail', 'success', { before, after: enabled });
      if (enabled && !before) {
        for (const l of enabledListeners) {
          try {
            await l();
          } catch (err) {
            log.error({ err }, 'releasing held messages failed');
          }
        }
      }
      return service.settings();
    },

    async pause(id, pause) {
      const existing = await store.get<PauseDoc>(PAUSES, id);
      if (existing) return;
      try {
        await store.put(PAUSES, id, { ...pause, at: new Date().toISOString() }, { ifVersion: 0 });
      } catch (err) {
        if (err instanceof VersionConflictError) return; // another worker paused it first
        throw err;
      }
      log.warn({ serverId: id, code: pause.code }, 'SMTP server paused: its credentials were rejected; messages are held until they change');
      await announce(id);
    },

    async unpause(id) {
      const deleted = await store.delete(PAUSES, id);
      if (deleted) await announce(id);
      return deleted;
    },

    pauseOf,

    onChange(listener) {
      changeListeners.push(listener);
    },
    onCredentialsChanged(listener) {
      credentialListeners.push(listener);
    },
    onSendingEnabled(listener) {
      enabledListeners.push(listener);
    },

    async start() {
      unsubscribe ??= await store.subscribe(SERVERS_CHANNEL, forget);
    },
    async stop() {
      const u = unsubscribe;
      unsubscribe = null;
      if (u) await u();
    },
  };
  return service;
}
