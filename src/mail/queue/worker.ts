import type { Clock, Timer } from '../../clock.js';
import type { Logger } from '../../log.js';
import type { Metrics } from '../../metrics.js';
import { VersionConflictError, type ClaimedDoc, type Doc, type Store } from '../../store/store.js';
import { composeMessage } from '../compose.js';
import type { SmtpServers } from '../servers.js';
import type { ResolvedServer } from '../servers/model.js';
import type { MailTransport } from '../transport.js';
import type { ServerActivity } from './activity.js';
import type { Holds } from './holds.js';
import { createLeaseKeeper } from './lease.js';
import type { Messages } from './messages.js';
import {
  DEFAULT_MAX_RETRY_DELAY_MS,
  MAIL_QUEUE,
  MESSAGES,
  perServerInFlight,
  SENDING_MARK_AFTER_MS,
  type MessageDoc,
  type MessageStatus,
  type QueueOptions,
} from './model.js';
import { deliveryOutcome, type DeliveryAttempt, type NextState } from './delivery-outcome.js';
import { createOutcomeWriter } from './outcomes.js';
import { createPacer, isThrottled } from './pacing.js';
import type { Parking } from './parking.js';

/**
 * The workers of one instance. Delivery is at least once: a worker claims a batch of due ids (atomically, so
 * two workers never hold the same id), sends, then records the outcome. A worker killed mid-send leaves its
 * claim to expire (the lease, seconds long); another worker (or the restarted one) sends again. Duplicates are
 * therefore possible only for a crash between the server's 250 reply and our status write. Long sends keep
 * their lease with a heartbeat. A store outage does not abandon a delivery: its outcome waits in memory
 * (outcomes.ts), the lease is extended again once the store is back, and a delivery cut off before sending puts
 * its message back at once.
 */
export interface Workers {
  /** Wakes the local workers (something became due). */
  wake(): void;
  start(): void;
  /** Stops claiming and waits for in-flight sends to finish and be recorded. */
  stop(): Promise<void>;
}

export interface WorkerDeps {
  store: Store;
  servers: SmtpServers;
  transport: MailTransport;
  log: Logger;
  metrics?: Metrics | undefined;
  clock: Clock;
  messages: Messages;
  holds: Holds;
  parking: Parking;
  activity: ServerActivity;
  fromFormat: string;
  options: QueueOptions;
  /** Told once per message that this worker's write made failed (notifications). */
  onFailed?: ((id: string, message: MessageDoc) => void) | undefined;
}

export function createWorkers(deps: WorkerDeps): Workers {
  const { store, servers, transport, log, metrics, clock, messages, holds, parking, activity, options: opts } = deps;
  const leaseMs = opts.leaseMs ?? 20_000;
  const pollMs = opts.pollMs ?? 200;
  const backoff = { baseMs: opts.retryBaseMs, capMs: opts.maxRetryDelayMs ?? DEFAULT_MAX_RETRY_DELAY_MS };
  const now = () => clock.now();
  const lease = createLeaseKeeper({
    store,
    queue: MAIL_QUEUE,
    log,
    leaseMs,
    heartbeatMs: opts.heartbeatMs ?? Math.max(50, Math.floor(leaseMs / 3)),
    now,
  });
  const outcomes = createOutcomeWriter({ store, queue: MAIL_QUEUE, lease, log, now });
  const pacer = createPacer({
    locks: store,
    now,
    perServerInFlight: perServerInFlight(opts),
  });
  const inFlight = new Map<string, Promise<void>>();
  let running = false;
  let loop: Promise<void> | null = null;
  let signal: (() => void) | null = null;
  /** Set while claims fail: an outage is logged once, not at every poll. */
  let claimsFailing = false;
  /** When a short claim last looked for parked mail to take over (see takeOverParked). */
  let parkedLookAt = -Infinity;
  /**
   * The last claim took fewer than it asked for: nothing else is due in the global schedule, so no other
   * server's message waits behind this instance's deliveries and the cap would only leave slots idle. While
   * true, a server's messages are admitted over the cap and its parked ones take every free slot.
   */
  let queueDrained = false;

  function wake(): void {
    const s = signal;
    signal = null;
    s?.();
  }

  /** Writes what a delivery came to, moving the message to the index of its new status. */
  async function record(id: string, version: number, from: MessageStatus, next: NextState): Promise<void> {
    const { value } = next;
    if (next.status === 'held' && next.pauseServer) await servers.pause(value.serverId, next.pauseServer);
    let written = true;
    try {
      await outcomes.write(id, () => messages.put(id, value, version, from));
    } catch (err) {
      if (!(err instanceof VersionConflictError)) throw err;
      // Changed meanwhile (resent, deleted): leave the schedule for the next claim to re-read.
      written = false;
    }
    if (next.status !== 'held') {
      // A send or a failure happened whatever became of its write; a deferral that lost to a change did not.
      if (written || next.status !== 'deferred') metrics?.messagesTotal.inc({ outcome: next.status });
      if (written && next.status === 'failed') deps.onFailed?.(id, value);
      return;
    }
    if (!written) return;
    await holds.recheck(id, value.serverId, next.reason);
    if (next.diagnosis)
      log.warn(
        { messageId: id, serverId: value.serverId, code: next.diagnosis.code },
        'credentials rejected; server paused, message held',
      );
  }

  /** Delivers a claimed message, read in the same step as its claim. */
  async function deliver(id: string, doc: Doc<MessageDoc> | null): Promise<void> {
    if (!doc || doc.value.status === 'sent' || doc.value.status === 'failed' || doc.value.status === 'held') {
      // Stale index entry (deleted, finished, held by an admin action): drop it.
      await lease.end(id);
      await store.unschedule(MAIL_QUEUE, id);
      return;
    }
    const serverId = doc.value.serverId;
    if (
      (await deliverWaiting(id, doc)) === 'done' &&
      parking.hinted(serverId) &&
      (queueDrained || pacer.inFlight(serverId) < pacer.perServerInFlight)
    ) {
      // The message left the waiting queue (sent, deferred, held, failed) and its server is below the cap (or
      // nothing else is due): the earliest message this instance parked for it takes the slot. A paused server's
      // parked messages are thus held one after the other. An instance that never parks pays nothing here.
      await parking.unpark(serverId, 1).catch((err: unknown) => {
        log.warn({ err, serverId }, 'unparking a message failed; the sweep will');
      });
    }
  }

  /** Delivers a waiting message, or parks or puts it back when its server may not send now. */
  async function deliverWaiting(id: string, doc: Doc<MessageDoc>): Promise<'done' | 'later'> {
    const m = doc.value;
    const outcome = (attempt: DeliveryAttempt) =>
      deliveryOutcome(m, attempt, { maxAttempts: opts.maxAttempts, backoff, now: now() });
    const server = await servers.resolve(m.serverId);
    const finish = async (attempt: DeliveryAttempt) => {
      await record(id, doc.version, m.status, outcome(attempt));
      return 'done' as const;
    };
    if (!server) return finish({ kind: 'server_deleted' });
    if (!(await servers.sendingEnabled())) return finish({ kind: 'sending_disabled' });
    if (await servers.pauseOf(server.id)) return finish({ kind: 'server_paused' });
    await activity.touch(server.id);
    const later = await pacer.admit(server, () => !queueDrained && activity.othersWaiting(server.id));
    if (later === 'park') {
      await lease.end(id);
      await parking.park(id, server.id);
      return 'later';
    }
    if (later !== null) {
      await lease.end(id);
      await store.schedule(MAIL_QUEUE, id, later);
      return 'later';
    }
    let paced: 'sent' | 'throttled' | 'other' = 'other';
    try {
      paced = await send(id, doc, server, outcome);
    } finally {
      pacer.done(server.id, paced);
    }
    return 'done';
  }

  /**
   * Work conservation: a claim came back short, so nothing else is due and this instance has free slots.
   * Servers with parked mail (a few, earliest mark first) get them, so a second instance helps drain what
   * another parked, a restarted one picks up what it parked before, and a mailbox parked while another had mail
   * waiting goes back to the instance's full width once that one is done. At most once a second (one store
   * command); in between, each finished delivery of a server this instance parked unparks the next.
   */
  async function takeOverParked(free: number): Promise<number> {
    const at = now();
    if (at - parkedLookAt < 1000) return 0;
    parkedLookAt = at;
    let moved = 0;
    for (const { id: serverId } of await parking.servers(5)) {
      moved += await parking.unpark(serverId, free - moved);
      if (moved >= free) break;
    }
    return moved;
  }

  async function send(
    id: string,
    doc: Doc<MessageDoc>,
    server: ResolvedServer,
    outcome: (attempt: DeliveryAttempt) => NextState,
  ): Promise<'sent' | 'throttled' | 'other'> {
    const m = doc.value;

    // `sending` is written only when a delivery takes a while: fast ones go from queued straight to sent,
    // one store write less per message. The attempt is counted in the final write either way.
    const sending: MessageDoc = {
      ...m,
      status: 'sending',
      heldReason: null,
      attempts: m.attempts + 1,
      updatedAt: now(),
    };
    let version = doc.version;
    let marking: Promise<void> | null = null;
    const markTimer = clock.setTimeout(() => {
      marking = messages.put(id, { ...sending, updatedAt: now() }, doc.version).then(
        (d) => {
          version = d.version;
        },
        (err: unknown) => {
          if (!(err instanceof VersionConflictError))
            log.warn({ err, messageId: id }, 'marking a message as sending failed');
        },
      );
    }, SENDING_MARK_AFTER_MS);
    const settleMark = async () => {
      markTimer.cancel();
      if (marking) await marking;
    };
    // A message kept as submitted goes out as it is, from the server's address to the recipients of its envelope.
    const composed = m.mime
      ? {
          raw: Buffer.from(m.mime, 'base64'),
          envelope: {
            from: server.fromAddress,
            to: m.recipients.map((r) => r.address),
            ...(m.eightBit ? { use8BitMime: true } : {}),
          },
        }
      : composeMessage(m.input, server, deps.fromFormat);
    const fromDomain = server.fromAddress.slice(server.fromAddress.lastIndexOf('@') + 1);
    let attempt: DeliveryAttempt;
    try {
      attempt = { kind: 'accepted', result: await transport.send(server, composed, `<${id}@${fromDomain}>`) };
    } catch (error) {
      attempt = {
        kind: 'failed',
        error,
        server: { host: server.host, port: server.port, protocol: server.protocol, tls: server.tls },
      };
    }
    await settleMark();
    await record(id, version, m.status, outcome(attempt));
    return attempt.kind === 'accepted' ? 'sent' : isThrottled(attempt.error) ? 'throttled' : 'other';
  }

  async function run(): Promise<void> {
    // Claims are batched: with work in flight, claim again only when a quarter of the slots are free, so a
    // busy worker makes one claim round trip per several messages instead of one per message.
    const batch = Math.max(1, Math.floor(opts.concurrency / 4));
    while (running) {
      const free = opts.concurrency - inFlight.size;
      let claimed = 0;
      let unparked = 0;
      if (free >= batch || (free > 0 && inFlight.size === 0)) {
        let claims: ClaimedDoc<MessageDoc>[] = [];
        try {
          claims = await store.claimDueDocs<MessageDoc>(MAIL_QUEUE, MESSAGES, now(), leaseMs, free);
          claimsFailing = false;
        } catch (err) {
          if (!claimsFailing) log.error({ err }, 'claiming due messages failed; trying again at every poll');
          claimsFailing = true;
        }
        claimed = claims.length;
        if (!claimsFailing) queueDrained = claimed < free;
        for (const { id, doc } of claims) {
          lease.hold(id);
          const p = deliver(id, doc)
            .catch((err: unknown) => outcomes.failed(id, err))
            .finally(() => {
              void lease.end(id);
              inFlight.delete(id);
              wake();
            });
          inFlight.set(id, p);
        }
        if (!claimsFailing && queueDrained) {
          try {
            // Unparked messages are due now: the next turn of the loop claims them without waiting.
            // One slot fewer than free: the claim that takes them then still comes back short if nothing else is
            // due, so they are not parked again at once.
            unparked = await takeOverParked(Math.max(1, free - claimed - 1));
          } catch (err) {
            log.warn({ err }, 'taking over parked messages failed');
          }
        }
      }
      if (!running) break;
      // Nothing due, or not enough free slots for a batch: wait for a finished send, a local enqueue, or the poll.
      if ((claimed === 0 && unparked === 0) || opts.concurrency - inFlight.size < batch) {
        await new Promise<void>((resolve) => {
          let timer: Timer | null = null;
          const done = () => {
            timer?.cancel();
            resolve();
          };
          timer = clock.setTimeout(
            () => {
              if (signal === done) signal = null;
              resolve();
            },
            claimed === 0 ? pollMs : leaseMs,
          );
          signal = done;
        });
      }
    }
  }

  return {
    wake,
    start() {
      if (running) return;
      running = true;
      lease.start();
      loop = run();
    },
    async stop() {
      running = false;
      wake();
      await loop;
      loop = null;
      await outcomes.stop();
      await Promise.allSettled([...inFlight.values()]);
      await lease.stop();
    },
  };
}
