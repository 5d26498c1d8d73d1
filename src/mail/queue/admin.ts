import type { Actor, AuditRecorder } from '../../admin/types.js';
import type { Clock } from '../../clock.js';
import { AppError } from '../../errors.js';
import type { Logger } from '../../log.js';
import type { Metrics } from '../../metrics.js';
import { VersionConflictError, type Store } from '../../store/store.js';
import { iso, toView, type MessageView } from '../message-view.js';
import { deleteChanges } from '../queue-limits.js';
import type { SmtpServers } from '../servers.js';
import type { MailTransport } from '../transport.js';
import type { Holds } from './holds.js';
import type { Messages } from './messages.js';
import { parkedQueue, type Parking } from './parking.js';
import {
  ALL,
  FAILED_INDEX,
  HELD_INDEX,
  MAIL_QUEUE,
  MESSAGES,
  SENT_INDEX,
  STATUS_INDEXES,
  type MessageStatus,
  type QueueOverview,
} from './model.js';

/** What admins (pages, API) and the other services do to the queue; read from the status indexes only. */
export interface QueueAdmin {
  get(id: string): Promise<MessageView>;
  overview(limit?: number): Promise<QueueOverview>;
  /** Failed, held or deferred → queued now (attempts start over for failed ones). */
  resend(id: string, actor: Actor): Promise<MessageView>;
  remove(id: string, actor: Actor): Promise<void>;
  /** Every deferred message becomes due now. */
  flush(actor: Actor): Promise<number>;
  /** Lifts a server's pause and releases its held messages (after new credentials or re-authorization). */
  resumeServer(serverId: string): Promise<number>;
  /** Releases messages held because outgoing mail was off. */
  releaseDisabledHolds(): Promise<number>;
}

export interface QueueAdminDeps {
  store: Store;
  servers: SmtpServers;
  transport: MailTransport;
  log: Logger;
  metrics?: Metrics | undefined;
  audit?: AuditRecorder | undefined;
  clock: Clock;
  messages: Messages;
  holds: Holds;
  parking: Parking;
  wake: () => void;
}

/** Above this many waiting and held messages the overview reads a sample, not the whole backlog. */
const OVERVIEW_FULL = 2000;

export function createQueueAdmin(deps: QueueAdminDeps): QueueAdmin {
  const { store, servers, transport, log, metrics, clock, messages, holds, parking, wake } = deps;

  async function audit(
    actor: Actor,
    action: string,
    target: string,
    detail?: Record<string, string | number>,
  ): Promise<void> {
    await deps.audit?.record({ actor, action, target, outcome: 'success', ...(detail ? { detail } : {}) });
  }

  return {
    async get(id) {
      const doc = await messages.get(id);
      return toView(id, doc.value);
    },

    async overview(limit = 200) {
      // A backlog (waiting and held) up to OVERVIEW_FULL is read in full for its counts and oldest age; a larger
      // one only its earliest `limit` of each index, the rest counted by the indexes (a page view must not read
      // 100,000 messages). Failed and sent are only counted, and the error queue is the newest `limit` failures.
      // Parked messages are waiting too: those of at most PARKED_SERVERS_READ servers are read (parking.ts).
      const [waitingStats, heldStats, parkedSample] = await Promise.all([
        store.scheduleStats(MAIL_QUEUE),
        store.scheduleStats(HELD_INDEX),
        parking.read(limit),
      ]);
      const full = waitingStats.count + parkedSample.count + heldStats.count <= OVERVIEW_FULL;
      const parked = full && parkedSample.count > parkedSample.entries.length ? await parking.read(ALL) : parkedSample;
      const [waiting, held, failedEntries, failed, sent] = await Promise.all([
        store.scheduled(MAIL_QUEUE, { limit: full ? ALL : limit }),
        store.scheduled(HELD_INDEX, { limit: full ? ALL : limit }),
        store.scheduled(FAILED_INDEX, { limit, newestFirst: true }),
        store.scheduleStats(FAILED_INDEX),
        store.scheduleStats(SENT_INDEX),
      ]);
      const counts: Record<MessageStatus, number> = {
        queued: 0,
        sending: 0,
        sent: sent.count,
        deferred: 0,
        held: 0,
        failed: failed.count,
      };
      const queue: MessageView[] = [];
      let oldest: number | null = null;
      for (const doc of await messages.read([...waiting, ...parked.entries, ...held].map((e) => e.id))) {
        const m = doc.value;
        // A stale entry (a finished message a worker has not dropped yet) is counted by its own index.
        if (m.status === 'sent' || m.status === 'failed') continue;
        counts[m.status]++;
        queue.push(toView(doc.id, m));
        if (oldest === null || m.createdAt < oldest) oldest = m.createdAt;
      }
      if (!full) {
        counts.held = heldStats.count;
        counts.queued = Math.max(0, waitingStats.count + parked.count - counts.sending - counts.deferred);
      }
      const errors = (await messages.read(failedEntries.map((e) => e.id))).filter((d) => d.value.status === 'failed');
      for (const [state, n] of Object.entries(counts)) metrics?.queueDepth.set({ state }, n);
      const byAge = (a: MessageView, b: MessageView) => a.createdAt.localeCompare(b.createdAt);
      return {
        queue: queue.sort(byAge).slice(0, limit),
        // Newest failure first, in the index's order.
        errors: errors.map((d) => toView(d.id, d.value)),
        counts,
        oldestQueuedAt: iso(oldest),
        oldestAgeMs: oldest === null ? null : clock.now() - oldest,
      };
    },

    async resend(id, actor) {
      const doc = await messages.get(id);
      const m = doc.value;
      if (m.status === 'sent' || m.status === 'sending')
        throw new AppError('conflict', {
          message: `The message is ${m.status}; only waiting or failed messages can be resent.`,
        });
      const now = clock.now();
      await messages.put(
        id,
        {
          ...m,
          status: 'queued',
          heldReason: null,
          attempts: m.status === 'failed' ? 0 : m.attempts,
          nextAttemptAt: now,
          updatedAt: now,
        },
        doc.version,
        m.status,
      );
      // Back in the global schedule, due now: a parked copy of it would only be a stale entry later.
      await store.unschedule(parkedQueue(m.serverId), id);
      wake();
      await audit(actor, 'mail.resend', `message:${id}`, { previousStatus: m.status });
      return toView(id, (await messages.get(id)).value);
    },

    async remove(id, actor) {
      const doc = await messages.get(id);
      if (doc.value.status === 'sending')
        throw new AppError('conflict', { message: 'The message is being sent right now; try again in a moment.' });
      // Out of every index, not only its status's, and out of its server's parked schedule: nothing can be left
      // pointing at a deleted message.
      await store.delete(MESSAGES, id, {
        ifVersion: doc.version,
        schedule: [...STATUS_INDEXES, parkedQueue(doc.value.serverId)].map((queue) => ({ queue, dueAt: null })),
        count: deleteChanges(doc.value),
      });
      await audit(actor, 'mail.delete', `message:${id}`, { status: doc.value.status });
    },

    async flush(actor) {
      // Parked messages are left where they are: they were due when claimed, and go back due at once.
      let n = 0;
      const now = clock.now();
      const waiting = await store.scheduled(MAIL_QUEUE, { limit: ALL });
      for (const doc of await messages.read(waiting.map((e) => e.id))) {
        if (doc.value.status !== 'deferred' && doc.value.status !== 'queued') continue;
        try {
          await messages.put(
            doc.id,
            { ...doc.value, status: 'queued', nextAttemptAt: now, updatedAt: now },
            doc.version,
            doc.value.status,
          );
        } catch (err) {
          if (err instanceof VersionConflictError) continue;
          throw err;
        }
        n++;
      }
      wake();
      await audit(actor, 'mail.flush', 'queue:mail', { messages: n });
      return n;
    },

    async resumeServer(serverId) {
      await servers.unpause(serverId);
      // New credentials or a new authorization: start from a fresh connection pool.
      transport.invalidate(serverId);
      const n = await holds.release((m) => m.serverId === serverId && m.heldReason === 'server_paused');
      if (n) log.info({ serverId, messages: n }, 'server resumed; held messages released');
      return n;
    },

    async releaseDisabledHolds() {
      if (!(await servers.sendingEnabled())) return 0;
      return holds.release((m) => m.heldReason === 'sending_disabled');
    },
  };
}
