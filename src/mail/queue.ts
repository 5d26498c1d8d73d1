import { systemClock } from '../clock.js';
import type { MessageInput } from './compose.js';
import { createServerActivity } from './queue/activity.js';
import { createQueueAdmin, type QueueAdmin } from './queue/admin.js';
import { createQueueBrowser, type QueueBrowser } from './queue/browse.js';
import { createEnqueue } from './queue/enqueue.js';
import { createEnqueueMime, type EnqueueMime } from './queue/enqueue-mime.js';
import { createHolds } from './queue/holds.js';
import { createQueueMaintenance } from './queue/maintenance.js';
import { createMessages } from './queue/messages.js';
import { createParking } from './queue/parking.js';
import {
  DEFAULT_KEEP_SENT_MS,
  perServerInFlight,
  type EnqueueOptions,
  type MailQueueDeps,
  type MessageDoc,
  type MessageStatus,
} from './queue/model.js';
import { createWorkers } from './queue/worker.js';

/**
 * The durable mail queue, on the Store interface so it works the same on the embedded file store and on Redis.
 * Its parts live in queue/: the data and its indexes (model.ts, messages.ts), accepting mail (enqueue.ts),
 * what a delivery comes to (delivery-outcome.ts, a pure function), the workers with their leases and
 * outage-proof outcome writes (worker.ts, lease.ts, outcomes.ts), held mail (holds.ts), admin actions
 * (admin.ts) and the upkeep of indexes, counters and retention (maintenance.ts).
 *
 * Outcomes: sent; temporary failure (4xx, network, timeout) → deferred with exponential backoff and jitter,
 * failed after MAILGATE_QUEUE_MAX_ATTEMPTS; permanent failure (5xx) → failed at once with the reply;
 * credentials rejected → the server is paused and its messages held (no attempts burnt) until the
 * credentials change or the mailbox is re-authorized (resumeServer). Outgoing mail switched off → held.
 */

export { toView, type MessageView } from './message-view.js';
export { PAGE_SIZE, type BrowseFilter, type BrowsePage } from './queue/browse.js';
export { OUTCOMES, type HourlyOutcomes, type Outcome } from './queue/hourly.js';
export type { EnqueueMime, MimeSubmission } from './queue/enqueue-mime.js';
export {
  FAILED_INDEX,
  HELD_INDEX,
  MAIL_QUEUE,
  MESSAGES,
  SENDING_MARK_AFTER_MS,
  SENT_INDEX,
  newMessageId,
  type EnqueueOptions,
  type HeldReason,
  type MailQueueDeps,
  type MessageDoc,
  type MessageError,
  type MessageSource,
  type MessageStatus,
  type QueueOptions,
  type QueueOverview,
  type RecipientResult,
} from './queue/model.js';

export interface MailQueue extends QueueAdmin, QueueBrowser {
  enqueue(
    input: MessageInput,
    options?: EnqueueOptions,
  ): Promise<{ id: string; status: MessageStatus; created: boolean }>;
  /** Accepts a message kept as MIME (the SMTP front): resolves once it is stored durably. */
  enqueueMime: EnqueueMime;
  /** Wakes the local workers (something became due). */
  wake(): void;
  /** Local listeners: a worker of this instance moved a message to failed (once per message). */
  onMessageFailed(listener: (id: string, message: MessageDoc) => void): void;
  /** Deletes sent messages older than the retention (runs hourly while workers run). */
  cleanup(): Promise<number>;
  /** Puts parked messages of servers whose mark is stale back in the queue (runs every few seconds). */
  sweepParked(): Promise<number>;
  start(): Promise<void>;
  /** Stops claiming and waits for in-flight sends to finish and be recorded. */
  stop(): Promise<void>;
}

export function createMailQueue(deps: MailQueueDeps): MailQueue {
  const { store, servers, log } = deps;
  const clock = deps.clock ?? systemClock;
  const keepSentMs = deps.options.keepSentMs ?? DEFAULT_KEEP_SENT_MS;
  const now = () => clock.now();
  const activity = createServerActivity({ store, now, log });
  const parking = createParking({ store, now, log });
  const messages = createMessages({ store, limits: deps.limits, keepSentMs, activity });
  const wake = () => workers.wake();
  const failedListeners: Array<(id: string, message: MessageDoc) => void> = [];
  const holds = createHolds({ store, servers, messages, clock, wake });
  const workers = createWorkers({
    store,
    servers,
    transport: deps.transport,
    log,
    metrics: deps.metrics,
    clock,
    messages,
    holds,
    parking,
    activity,
    fromFormat: deps.fromFormat,
    options: deps.options,
    onFailed: (id, message) => failedListeners.forEach((l) => l(id, message)),
  });
  const maintenance = createQueueMaintenance({
    store,
    log,
    clock,
    keepSentMs,
    parking,
    perServerInFlight: perServerInFlight(deps.options),
    wake,
  });
  const admin = createQueueAdmin({
    store,
    servers,
    transport: deps.transport,
    log,
    metrics: deps.metrics,
    audit: deps.audit,
    clock,
    messages,
    holds,
    parking,
    wake,
  });
  let started = false;

  return {
    ...admin,
    ...createQueueBrowser({ store, messages, clock, parking }),
    enqueue: createEnqueue({ store, servers, messages, clock, limits: deps.limits, wake }),
    enqueueMime: createEnqueueMime({ servers, messages, clock, limits: deps.limits, wake }),
    wake,
    onMessageFailed: (listener) => void failedListeners.push(listener),
    cleanup: () => maintenance.cleanup(),
    sweepParked: () => maintenance.sweepParked(),
    async start() {
      if (started) return;
      await maintenance.prepare();
      await activity.refresh();
      started = true;
      workers.start();
      maintenance.start();
    },
    async stop() {
      started = false;
      await workers.stop();
      maintenance.stop();
    },
  };
}
