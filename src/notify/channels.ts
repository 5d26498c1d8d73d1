import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import type { Actor, AuditRecorder } from '../admin/types.js';
import type { Clock } from '../clock.js';
import type { Keyring } from '../crypto/keyring.js';
import { AppError } from '../errors.js';
import { refusalBeforeConnect, type EgressGuard } from '../net/connect.js';
import type { Store } from '../store/store.js';
import {
  CHANNEL_HEALTH,
  CHANNELS,
  EVENT_TYPES,
  FAILING_AFTER,
  type ChannelDoc,
  type ChannelHealthDoc,
  type ChannelView,
  type EventType,
} from './model.js';

/**
 * Notification channels: a webhook (`url`, `secret` sealed at rest, never shown again) or an email channel
 * (`to`). Input is checked here, once, for the API and the form alike: a webhook's secret has at least 32 bytes
 * and its URL must pass the egress policy (a metadata address is refused before anything is stored).
 */

export const MIN_SECRET_BYTES = 32;

const eventList = z.array(z.enum(EVENT_TYPES)).max(EVENT_TYPES.length).optional();
const name = z.string().trim().min(1, 'enter a name').max(100, 'at most 100 characters');
const url = z
  .string()
  .trim()
  .max(2000, 'at most 2000 characters')
  .pipe(z.url({ protocol: /^https?$/, error: 'enter an http or https URL' }));
const secret = z
  .string()
  .refine((s) => Buffer.byteLength(s, 'utf8') >= MIN_SECRET_BYTES, `at least ${MIN_SECRET_BYTES} bytes`)
  .refine((s) => s.length <= 1000, 'at most 1000 characters');
const to = z
  .array(z.email('enter an email address'))
  .min(1, 'enter at least one address')
  .max(20, 'at most 20 addresses');

export const createChannelInput = z.discriminatedUnion('type', [
  z.strictObject({ name, type: z.literal('webhook'), url, secret, events: eventList }),
  z.strictObject({
    name,
    type: z.literal('email'),
    to: z.union([z.email('enter an email address'), to]),
    events: eventList,
  }),
]);
export type CreateChannelInput = z.output<typeof createChannelInput>;

/** An update names only what changes; a webhook's secret changes only when given. */
export const updateChannelInput = z.strictObject({
  name: name.optional(),
  url: url.optional(),
  secret: secret.optional(),
  to: z.union([z.email('enter an email address'), to]).optional(),
  events: z.array(z.enum(EVENT_TYPES)).max(EVENT_TYPES.length).nullable().optional(),
});
export type UpdateChannelInput = z.output<typeof updateChannelInput>;

function fieldError(field: string, message: string): AppError {
  return new AppError('validation_failed', { message: `${field}: ${message}`, details: [{ field, message }] });
}

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

export interface ChannelServiceDeps {
  store: Store;
  keyring: Keyring;
  audit: AuditRecorder;
  clock: Clock;
  egress: EgressGuard;
}

export class ChannelService {
  constructor(private readonly deps: ChannelServiceDeps) {}

  /** Refuses a webhook URL the egress policy would never let a delivery reach. */
  private checkUrl(value: string): void {
    const refusal = refusalBeforeConnect(this.deps.egress, new URL(value).hostname);
    if (refusal) throw fieldError('url', `not allowed by the egress policy (${refusal.message})`);
  }

  private seal(id: string, value: string): string {
    return this.deps.keyring.seal(value, { collection: CHANNELS, id, field: 'secret' });
  }

  /** The webhook's signing secret, opened for one delivery. */
  secretOf(id: string, doc: ChannelDoc): string {
    if (!doc.secret) throw new Error(`channel ${id} has no secret`);
    return this.deps.keyring.open(doc.secret, { collection: CHANNELS, id, field: 'secret' });
  }

  async create(input: CreateChannelInput, actor: Actor, ip?: string): Promise<ChannelView> {
    const id = `nc_${randomBytes(9).toString('base64url')}`;
    const now = this.deps.clock.now();
    if (input.type === 'webhook') this.checkUrl(input.url);
    const doc: ChannelDoc = {
      name: input.name,
      type: input.type,
      url: input.type === 'webhook' ? input.url : null,
      secret: input.type === 'webhook' ? this.seal(id, input.secret) : null,
      to: input.type === 'email' ? (Array.isArray(input.to) ? input.to : [input.to]) : null,
      events: input.events && input.events.length > 0 ? [...new Set(input.events)] : null,
      createdAt: now,
      updatedAt: now,
    };
    await this.deps.store.put(CHANNELS, id, doc, { ifVersion: 0 });
    await this.recordAudit(actor, 'notification_channel.create', id, { type: doc.type, name: doc.name }, ip);
    return this.view(id, doc, null);
  }

  async update(id: string, input: UpdateChannelInput, actor: Actor, ip?: string): Promise<ChannelView> {
    const current = await this.deps.store.get<ChannelDoc>(CHANNELS, id);
    if (!current) throw new AppError('not_found', { message: `No notification channel ${id}.` });
    const c = current.value;
    if (c.type === 'webhook' && input.to !== undefined) throw fieldError('to', 'a webhook channel has no recipients');
    if (c.type === 'email' && (input.url !== undefined || input.secret !== undefined))
      throw fieldError(input.url !== undefined ? 'url' : 'secret', 'an email channel has no URL or secret');
    if (input.url !== undefined) this.checkUrl(input.url);
    const next: ChannelDoc = {
      ...c,
      ...(input.name !== undefined ? { name: input.name } : {}),
      ...(input.url !== undefined ? { url: input.url } : {}),
      ...(input.secret !== undefined ? { secret: this.seal(id, input.secret) } : {}),
      ...(input.to !== undefined ? { to: Array.isArray(input.to) ? input.to : [input.to] } : {}),
      ...(input.events !== undefined
        ? { events: input.events && input.events.length > 0 ? [...new Set(input.events)] : null }
        : {}),
      updatedAt: this.deps.clock.now(),
    };
    await this.deps.store.put(CHANNELS, id, next, { ifVersion: current.version });
    const changed = Object.keys(input).filter((k) => input[k as keyof UpdateChannelInput] !== undefined);
    await this.recordAudit(actor, 'notification_channel.update', id, { changed }, ip);
    return this.view(id, next, await this.health(id));
  }

  async remove(id: string, actor: Actor, ip?: string): Promise<void> {
    const deleted = await this.deps.store.delete(CHANNELS, id);
    if (!deleted) throw new AppError('not_found', { message: `No notification channel ${id}.` });
    await this.deps.store.delete(CHANNEL_HEALTH, id);
    await this.recordAudit(actor, 'notification_channel.delete', id, {}, ip);
  }

  async doc(id: string): Promise<ChannelDoc | null> {
    return (await this.deps.store.get<ChannelDoc>(CHANNELS, id))?.value ?? null;
  }

  async get(id: string): Promise<ChannelView> {
    const doc = await this.doc(id);
    if (!doc) throw new AppError('not_found', { message: `No notification channel ${id}.` });
    return this.view(id, doc, await this.health(id));
  }

  async list(): Promise<ChannelView[]> {
    const [channels, health] = await Promise.all([
      this.deps.store.list<ChannelDoc>(CHANNELS),
      this.deps.store.list<ChannelHealthDoc>(CHANNEL_HEALTH),
    ]);
    const byId = new Map(health.map((h) => [h.id, h.value]));
    return channels.map((c) => this.view(c.id, c.value, byId.get(c.id) ?? null));
  }

  /** A page in id order (`after` the last id of the previous page), with each channel's health. */
  async page(options: { limit: number; after?: string | undefined }): Promise<ChannelView[]> {
    const channels = await this.deps.store.list<ChannelDoc>(CHANNELS, { limit: options.limit, after: options.after });
    const health = await Promise.all(channels.map((c) => this.health(c.id)));
    return channels.map((c, i) => this.view(c.id, c.value, health[i] ?? null));
  }

  /** Channels with their documents, for the fan-out of an event. */
  async all(): Promise<{ id: string; doc: ChannelDoc }[]> {
    return (await this.deps.store.list<ChannelDoc>(CHANNELS)).map((d) => ({ id: d.id, doc: d.value }));
  }

  async health(id: string): Promise<ChannelHealthDoc | null> {
    return (await this.deps.store.get<ChannelHealthDoc>(CHANNEL_HEALTH, id))?.value ?? null;
  }

  /** Records how a delivery went. Concurrent deliveries may lose an update here: health is advisory, deliveries are not. */
  async recordResult(id: string, error: string | null): Promise<void> {
    const now = this.deps.clock.now();
    const current = await this.deps.store.get<ChannelHealthDoc>(CHANNEL_HEALTH, id);
    const h = current?.value ?? { consecutiveFailures: 0, lastError: null, lastFailureAt: null, lastSuccessAt: null };
    const next: ChannelHealthDoc =
      error === null
        ? { ...h, consecutiveFailures: 0, lastSuccessAt: now }
        : { ...h, consecutiveFailures: h.consecutiveFailures + 1, lastError: error.slice(0, 300), lastFailureAt: now };
    await this.deps.store.put(CHANNEL_HEALTH, id, next).catch(() => undefined);
  }

  wants(doc: ChannelDoc, type: EventType | 'test'): boolean {
    return type === 'test' || doc.events === null || doc.events.includes(type);
  }

  view(id: string, c: ChannelDoc, h: ChannelHealthDoc | null): ChannelView {
    const failures = h?.consecutiveFailures ?? 0;
    return {
      id,
      name: c.name,
      type: c.type,
      ...(c.type === 'webhook' ? { url: c.url ?? '', hasSecret: c.secret !== null } : { to: c.to ?? [] }),
      events: c.events,
      status: failures >= FAILING_AFTER ? 'failing' : 'ok',
      consecutiveFailures: failures,
      lastError: h?.lastError ?? null,
      lastFailureAt: iso(h?.lastFailureAt ?? null),
      lastSuccessAt: iso(h?.lastSuccessAt ?? null),
      createdAt: new Date(c.createdAt).toISOString(),
      updatedAt: new Date(c.updatedAt).toISOString(),
    };
  }

  private async recordAudit(
    actor: Actor,
    action: string,
    id: string,
    detail: Record<string, string | string[]>,
    ip?: string,
  ): Promise<void> {
    await this.deps.audit.record({
      actor,
      action,
      target: `notification_channel:${id}`,
      outcome: 'success',
      detail,
      ...(ip ? { ip } : {}),
    });
  }
}
