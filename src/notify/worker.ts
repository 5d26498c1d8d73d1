import { backoffDelay, type Backoff } from '../backoff.js';
import type { Clock, Timer } from '../clock.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import { VersionConflictError, type Doc, type Store } from '../store/store.js';
import type { ChannelService } from './channels.js';
import {
  DELIVERIES,
  DELIVERY_QUEUE,
  EVENTS,
  FANOUT_QUEUE,
  type ChannelDoc,
  type DeliveryDoc,
  type EventDoc,
  type NotifyEvent,
} from './model.js';

/**
 * Durable delivery, like the mail queue: an event is first copied into one delivery per channel that wants it
 * (the fan-out, idempotent: a delivery's id is the event's and the channel's), then each delivery is claimed from
 * a schedule, sent, and either deleted (delivered) or put back with backoff. Nothing is dropped for failing: a
 * delivery is retried until it goes through or its channel is deleted, and the channel's health shows the failures.
 * A claimer that dies leaves its claim to expire (the lease); the delivery is then sent again: at least once,
 * with the event `id` for the receiver to de-duplicate.
 */

export type DeliverFn = (
  channel: { id: string; doc: ChannelDoc },
  delivery: { id: string; event: NotifyEvent; serverId: string | null },
) => Promise<void>;

export interface NotifyWorkerDeps {
  store: Store;
  channels: ChannelService;
  deliver: DeliverFn;
  clock: Clock;
  log: Logger;
  metrics?: Metrics | undefined;
  pollMs: number;
  leaseMs: number;
  backoff: Backoff;
}

export class NotifyWorker {
  #timer: Timer | undefined;
  #running: Promise<void> | undefined;
  #stopped = true;
  #again = false;

  constructor(private readonly deps: NotifyWorkerDeps) {}

  start(): void {
    this.#stopped = false;
    this.#schedule(0);
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#timer?.cancel();
    await this.#running;
  }

  /** Something became due in this instance: run now rather than at the next poll. */
  wake(): void {
    if (this.#stopped) return;
    if (this.#running) {
      this.#again = true;
      return;
    }
    this.#timer?.cancel();
    this.#schedule(0);
  }

  #schedule(ms: number): void {
    this.#timer = this.deps.clock.setTimeout(() => {
      if (this.#stopped) return;
      this.#running = this.runOnce()
        .then(() => undefined)
        .catch((err: unknown) => this.deps.log.error({ err }, 'notification worker tick failed'))
        .finally(() => {
          this.#running = undefined;
          const again = this.#again;
          this.#again = false;
          if (!this.#stopped) this.#schedule(again ? 0 : this.deps.pollMs);
        });
    }, ms);
  }

  /** Fans out due events, then sends due deliveries; returns how many deliveries were attempted. */
  async runOnce(): Promise<number> {
    await this.fanOut();
    const now = this.deps.clock.now();
    const claimed = await this.deps.store.claimDueDocs<DeliveryDoc>(
      DELIVERY_QUEUE,
      DELIVERIES,
      now,
      this.deps.leaseMs,
      20,
    );
    await Promise.all(claimed.map((c) => this.deliverOne(c.id, c.doc)));
    return claimed.length;
  }

  private async fanOut(): Promise<void> {
    const now = this.deps.clock.now();
    const events = await this.deps.store.claimDueDocs<EventDoc>(FANOUT_QUEUE, EVENTS, now, this.deps.leaseMs, 50);
    if (events.length === 0) return;
    const channels = await this.deps.channels.all();
    for (const { id, doc } of events) {
      if (!doc) {
        await this.deps.store.unschedule(FANOUT_QUEUE, id);
        continue;
      }
      for (const channel of channels) {
        if (!this.deps.channels.wants(channel.doc, doc.value.event.type)) continue;
        const delivery: DeliveryDoc = {
          eventId: id,
          channelId: channel.id,
          event: doc.value.event,
          serverId: doc.value.serverId,
          attempts: 0,
          createdAt: now,
          lastError: null,
        };
        await this.deps.store
          .put(DELIVERIES, `${id}.${channel.id}`, delivery, {
            ifVersion: 0,
            schedule: { queue: DELIVERY_QUEUE, dueAt: now },
          })
          .catch((err: unknown) => {
            if (!(err instanceof VersionConflictError)) throw err;
          });
      }
      await this.deps.store
        .put(
          EVENTS,
          id,
          { ...doc.value, fannedOut: true },
          {
            ifVersion: doc.version,
            schedule: { queue: FANOUT_QUEUE, dueAt: null },
          },
        )
        .catch((err: unknown) => {
          if (!(err instanceof VersionConflictError)) throw err;
        });
    }
  }

  /**
   * On a store whose schedule entries may be lost in a crash (the embedded store writes them after the document),
   * puts every event not yet fanned out and every delivery not yet through back in its schedule. Runs alone: such a
   * store is exclusive to this process.
   */
  async rebuildSchedules(): Promise<void> {
    if (this.deps.store.durableIndexes) return;
    const now = this.deps.clock.now();
    for (const e of await this.deps.store.list<EventDoc>(EVENTS))
      if (!e.value.fannedOut) await this.deps.store.schedule(FANOUT_QUEUE, e.id, now);
    for (const d of await this.deps.store.list<DeliveryDoc>(DELIVERIES))
      await this.deps.store.schedule(DELIVERY_QUEUE, d.id, now);
  }

  private async deliverOne(id: string, doc: Doc<DeliveryDoc> | null): Promise<void> {
    if (!doc) {
      await this.deps.store.unschedule(DELIVERY_QUEUE, id);
      return;
    }
    const d = doc.value;
    const channel = await this.deps.channels.doc(d.channelId);
    if (!channel) {
      // The channel was deleted: its deliveries go with it.
      await this.deps.store.delete(DELIVERIES, id, { schedule: { queue: DELIVERY_QUEUE, dueAt: null } });
      return;
    }
    let error: string | null = null;
    try {
      await this.deps.deliver({ id: d.channelId, doc: channel }, { id, event: d.event, serverId: d.serverId });
    } catch (err) {
      error = err instanceof Error ? err.message : String(err);
    }
    this.deps.metrics?.notificationDeliveries.inc({
      channel: d.channelId,
      type: channel.type,
      result: error === null ? 'delivered' : 'failed',
    });
    await this.deps.channels.recordResult(d.channelId, error);
    try {
      if (error === null) {
        await this.deps.store.delete(DELIVERIES, id, {
          ifVersion: doc.version,
          schedule: { queue: DELIVERY_QUEUE, dueAt: null },
        });
        return;
      }
      const attempts = d.attempts + 1;
      const dueAt = this.deps.clock.now() + backoffDelay(attempts, this.deps.backoff);
      this.deps.log.warn(
        { deliveryId: id, channelId: d.channelId, eventType: d.event.type, attempts, error },
        'notification delivery failed; will retry',
      );
      await this.deps.store.put(
        DELIVERIES,
        id,
        { ...d, attempts, lastError: error },
        { ifVersion: doc.version, schedule: { queue: DELIVERY_QUEUE, dueAt } },
      );
    } catch (err) {
      if (!(err instanceof VersionConflictError)) throw err;
    }
  }

  /** Deliveries not yet through, for the page (how many wait per channel). */
  async pendingByChannel(): Promise<Map<string, number>> {
    const counts = new Map<string, number>();
    for (const d of await this.deps.store.list<DeliveryDoc>(DELIVERIES))
      counts.set(d.value.channelId, (counts.get(d.value.channelId) ?? 0) + 1);
    return counts;
  }
}
