import { randomBytes } from 'node:crypto';
import { AppError } from '../../errors.js';
import type { Doc } from '../../store/store.js';
import { loadServersFile, type FileDefined } from './file.js';
import {
  isApiProtocol,
  SERVERS,
  SERVERS_CHANNEL,
  SETTINGS_MESSAGE,
  type ResolvedServer,
  type SmtpServerDoc,
  type SmtpServerView,
} from './model.js';
import { presetRate, PROVIDER_PRESETS } from './presets.js';
import { effectiveSettings, resolvedServer } from './resolve.js';
import { createMailSettingsState, createServerPauses } from './state.js';
import { serverPages } from './pages.js';
import type { AuditContext, SmtpServers, SmtpServersDeps } from './service-types.js';
import { checkApiIntegration, checkServer, invalid } from './validation.js';
export type { AuditContext, MailSettingsView, SmtpServers, SmtpServersDeps } from './service-types.js';

/**
 * The SMTP servers service: create, edit and delete stored servers (audited), list them with the file-defined
 * ones, resolve one for sending, and keep every instance's caches (and the transports' pools) in step: each
 * change is published on SERVERS_CHANNEL and every instance forgets what it cached of that server.
 */

const newServerId = () => `srv_${randomBytes(9).toString('base64url').replace(/[-_]/g, 'x')}`;
export function createSmtpServers(deps: SmtpServersDeps): SmtpServers {
  const { store, keyring, config, audit, log } = deps;
  const fileServers = config.MAILGATE_SMTP_SERVERS_FILE
    ? loadServersFile(config.MAILGATE_SMTP_SERVERS_FILE, deps.env)
    : new Map<string, FileDefined>();
  const resolvedCache = new Map<string, Promise<ResolvedServer | null>>();
  let defaultCache: Promise<string | null> | null = null;
  const changeListeners: Array<(id: string) => void> = [];
  const credentialListeners: Array<(id: string) => void | Promise<void>> = [];
  const enabledListeners: Array<() => void | Promise<void>> = [];
  let unsubscribe: (() => Promise<void>) | null = null;

  const sealCtx = (id: string) => ({ collection: SERVERS, id, field: 'password' });
  const settingsState = createMailSettingsState({ store, announce: () => announce(SETTINGS_MESSAGE) });
  const pauses = createServerPauses({ store, log, announce: (id) => announce(id) });
  const readSettings = () => settingsState.read();
  const updateSettings = (change: Parameters<typeof settingsState.update>[0]) => settingsState.update(change);
  const pauseOf = (id: string) => pauses.pauseOf(id);

  function forget(message: string): void {
    defaultCache = null;
    if (message === SETTINGS_MESSAGE) {
      settingsState.forget();
      return;
    }
    resolvedCache.delete(message);
    pauses.forget(message);
    for (const l of changeListeners) l(message);
  }

  async function announce(message: string): Promise<void> {
    forget(message);
    // The file store delivers in-process too; forgetting twice is harmless.
    await store.publish(SERVERS_CHANNEL, message);
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
    const first = (await store.list<SmtpServerDoc>(SERVERS, { limit: 1 }))[0];
    return first?.id ?? [...fileServers.keys()][0] ?? null;
  }

  async function view(
    id: string,
    doc: SmtpServerDoc,
    version: number,
    source: 'ui' | 'file',
    hasPassword: boolean,
    defaultId: string | null,
  ): Promise<SmtpServerView> {
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
      ...effectiveSettings(doc, config),
    };
  }

  async function getDoc(id: string): Promise<Doc<SmtpServerDoc>> {
    if (fileServers.has(id)) throw new AppError('read_only');
    const doc = await store.get<SmtpServerDoc>(SERVERS, id);
    if (!doc) throw new AppError('not_found', { message: `No SMTP server ${id}.` });
    return doc;
  }

  async function recordAudit(
    ctx: AuditContext,
    action: string,
    target: string,
    outcome: 'success' | 'failure',
    detail?: Record<string, string | number | boolean | null | string[]>,
  ): Promise<void> {
    await audit.record({
      actor: ctx.actor,
      action,
      target,
      outcome,
      ...(ctx.ip ? { ip: ctx.ip } : {}),
      ...(detail ? { detail } : {}),
    });
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
    ...serverPages(store, () => service, fileServers),
    async list() {
      const defaultId = await defaultServerId();
      const out: SmtpServerView[] = [];
      for (const [id, f] of fileServers) out.push(await view(id, f.doc, 1, 'file', f.password !== null, defaultId));
      for (const d of await store.list<SmtpServerDoc>(SERVERS))
        out.push(await view(d.id, d.value, d.version, 'ui', d.value.password !== null, defaultId));
      return out.sort((a, b) => a.name.localeCompare(b.name) || a.id.localeCompare(b.id));
    },

    async viewOf(d) {
      return view(d.id, d.value, d.version, 'ui', d.value.password !== null, await defaultServerId());
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
      const preset = provider === 'custom' || isApiProtocol(input.protocol ?? '') ? null : PROVIDER_PRESETS[provider];
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
        rateLimitPerMinute: input.rateLimitPerMinute === undefined ? presetRate(provider) : input.rateLimitPerMinute,
        tls: preset?.tls ?? input.tls ?? false,
        authMethod: input.authMethod ?? 'none',
        oauthIntegrationId: input.authMethod === 'oauth2' ? (input.oauthIntegrationId ?? null) : null,
        username: input.username ?? null,
        sendAs: input.sendAs ?? [],
      } satisfies Partial<SmtpServerDoc>;
      const password = base.authMethod === 'basic' ? (input.password ?? null) : null;
      checkServer({ ...base, password });
      await checkApiIntegration(base, deps.integrationProvider);
      const doc: SmtpServerDoc = {
        ...base,
        password: password === null ? null : keyring.seal(password, sealCtx(id)),
        passwordVersion: 1,
        createdAt: now,
        updatedAt: now,
      };
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
      set('rateLimitPerMinute', input.rateLimitPerMinute);
      set('tls', input.tls);
      set('authMethod', input.authMethod);
      set('oauthIntegrationId', input.oauthIntegrationId);
      set('username', input.username);
      if (input.sendAs && input.sendAs.join() !== (before.sendAs ?? []).join()) set('sendAs', input.sendAs);
      if (next.authMethod !== 'oauth2') next.oauthIntegrationId = null;
      let newPassword: string | null | undefined;
      if (input.changePassword) newPassword = input.password ?? null;
      else if (input.password !== undefined) {
        throw invalid([
          { field: 'password', message: 'tick changePassword to change the password (it is kept otherwise)' },
        ]);
      }
      // Otherwise whoever may edit the server could point it at their own host and receive the write-only password.
      if (
        newPassword === undefined &&
        before.password !== null &&
        next.authMethod === 'basic' &&
        next.host !== before.host
      ) {
        throw invalid([
          {
            field: 'password',
            message:
              'the host changed: tick changePassword and enter the password again (a stored password is never sent to another host)',
          },
        ]);
      }
      const plaintextForCheck = newPassword !== undefined ? newPassword : before.password !== null ? '(kept)' : null;
      checkServer({ ...next, password: next.authMethod === 'basic' ? plaintextForCheck : null });
      await checkApiIntegration(next, deps.integrationProvider);
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
      const defaultChange =
        input.isDefault !== undefined && input.isDefault !== ((settings?.value.defaultServerId ?? null) === id);
      if (changed.length === 0 && !defaultChange) return service.get(id);
      if (changed.length > 0) {
        next.updatedAt = new Date().toISOString();
        await store.put(SERVERS, id, next, { ifVersion: current.version });
      }
      if (defaultChange) {
        await updateSettings((s) => ({
          ...s,
          defaultServerId: input.isDefault ? id : s.defaultServerId === id ? null : s.defaultServerId,
        }));
        changed.push('isDefault');
      }
      await announce(id);
      await recordAudit(ctx, 'smtp_server.update', `smtp_server:${id}`, 'success', { fields: changed });
      if (
        changed.some((f) =>
          ['password', 'username', 'authMethod', 'oauthIntegrationId', 'host', 'port', 'protocol', 'tls'].includes(f),
        )
      ) {
        await service.unpause(id);
        await notifyCredentials(id);
      }
      return service.get(id);
    },

    async remove(id, ctx) {
      await getDoc(id);
      await store.delete(SERVERS, id);
      await pauses.clear(id);
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
          return resolvedServer({ id, version, source, doc, password }, config);
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
      await recordAudit(ctx, enabled ? 'mail.outgoing_enable' : 'mail.outgoing_disable', 'settings:mail', 'success', {
        before,
        after: enabled,
      });
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

    pause: (id, pause) => pauses.pause(id, pause),
    unpause: (id) => pauses.unpause(id),
    isPausedNow: (id) => pauses.isPausedNow(id),
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
