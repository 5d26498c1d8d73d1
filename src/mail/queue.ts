import { createHash, randomUUID } from 'node:crypto';
import type { Actor, AuditRecorder } from '../admin/types.js';
import { AppError } from '../errors.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import { VersionConflictError, type Doc, type ScheduleMove, type Store } from '../store/store.js';
import { composeMessage, recipientsOf, withTextPart, type MessageInput, type RecipientEntry } from './compose.js';
import { diagnose, type Diagnosis } from './diagnose.js';
import { iso, toView, type MessageView } from './message-view.js';
import { buildCountersOnRedis, deleteChanges, messageSize, PlaceTally, placeChanges, queueFullError, readPlaceCounters, saveFileStoreCount, type QueueLimits } from './queue-limits.js';
import { createLeaseKeeper } from './queue/lease.js';
import { createOutcomeWriter } from './queue/outcomes.js';
import { PAUSES, type SmtpServers } from './servers.js';
import type { MailTransport } from './transport.js';

/**
 * The durable mail queue, on the Store interface so it works the same on the embedded file store and on Redis.
 *
 *   messages/<id>                 the message, its status, attempts, last error and per-recipient results
 *   schedule "mail"               due time of every message that still has to be tried (claimDue leases it)
 *   schedule "mail-held"          held messages, by the time they were held
 *   schedule "mail-failed"        failed messages, by the time they failed (the error queue, newest first)
 *   schedule "mail-sent"          sent messages, by the time they are to be deleted (sentAt + retention)
 *   idempotency/<apiKey>:<key>    compare-and-set created, points at the one message of that key
 *   mail_meta/indexes-v1          marks the status indexes as built for messages written before they existed
 *
 * Every message is in exactly one of the four schedules, the one of its status, and every write that changes
 * the status moves it between them in the same atomic step. The admin page, flush, releasing held mail and the
 * retention sweep then read only the messages they are about, never every message (sent ones are kept a week).
 *
 * Delivery is at least once: a worker claims a batch of due ids (atomically, so two workers never hold the
 * same id), sends, then records the outcome. A worker killed mid-send leaves its claim to expire (the lease,
 * seconds long); another worker (or the restarted one) sends again. Duplicates are therefore possible only for
 * a crash between the server's 250 reply and our status write. Long sends keep their lease with a heartbeat.
 * A store outage does not abandon a delivery: its outcome waits in memory (queue/outcomes.ts), the lease is
 * extended again once the store is back, and a delivery cut off before sending puts its message back at once.
 *
 * Outcomes: sent; temporary failure (4xx, network, timeout) → deferred with exponential backoff and jitter,
 * failed after MAILGATE_QUEUE_MAX_ATTEMPTS; permanent failure (5xx) → failed at once with the reply;
 * credentials rejected → the server is paused and its messages held (no attempts burnt) until the
 * credentials change or the mailbox is re-authorized (resumeServer). Outgoing mail switched off → held.
 */

export { toView, type MessageView } from './message-view.js';

export const MESSAGES = 'messages';
const IDEMPOTENCY = 'idempotency';
export const MAIL_QUEUE = 'mail';
/** The status indexes (schedules used as sorted sets of ids by time). */
export const HELD_INDEX = 'mail-held';
export const FAILED_INDEX = 'mail-failed';
export const SENT_INDEX = 'mail-sent';
const STATUS_INDEXES = [MAIL_QUEUE, HELD_INDEX, FAILED_INDEX, SENT_INDEX] as const;
const MAIL_META = 'mail_meta';
const INDEXES_MARKER = 'indexes-v1';
/** `scheduled` limit meaning "every entry". */
const ALL = Number.MAX_SAFE_INTEGER;
/** Sent messages deleted per claim of the retention sweep. */
const CLEANUP_BATCH = 100;
/** A delivery still running after this long is shown as `sending`. */
export const SENDING_MARK_AFTER_MS = 250;

export type MessageStatus = 'queued' | 'sending' | 'sent' | 'deferred' | 'held' | 'failed';
export type HeldReason = 'sending_disabled' | 'server_paused';

export interface MessageError {
  code: string;
  message: string;
  hint: string;
  responseCode?: number;
  at: number;
}

export interface RecipientResult extends RecipientEntry {
  status: 'pending' | 'accepted' | 'rejected';
  responseCode?: number;
  response?: string;
}

export interface MessageDoc {
  serverId: string;
  status: MessageStatus;
  heldReason: HeldReason | null;
  attempts: number;
  createdAt: number;
  updatedAt: number;
  nextAttemptAt: number | null;
  sentAt: number | null;
  lastError: MessageError | null;
  recipients: RecipientResult[];
  input: MessageInput;
  apiKeyId: string | null;
  smtpResponse: string | null;
  /** Bytes counted against MAILGATE_QUEUE_MAX_BYTES (absent on messages written before the limit existed). */
  size?: number;
}

export interface QueueOptions {
  concurrency: number;
  maxAttempts: number;
  retryBaseMs: number;
  /** How long a claim lasts before another worker may take the message. Default 20 s. */
  leaseMs?: number;
  /** How often running deliveries extend their leases. Default a third of the lease. */
  heartbeatMs?: number;
  /** Idle poll interval (a local enqueue wakes the worker at once). */
  pollMs?: number;
  /** Cap of the exponential backoff. */
  maxRetryDelayMs?: number;
  /** Sent messages are deleted this long after sending (GET then answers 404). Default 7 days. */
  keepSentMs?: number;
}

export interface MailQueueDeps {
  store: Store;
  servers: SmtpServers;
  transport: MailTransport;
  log: Logger;
  metrics?: Metrics;
  audit?: AuditRecorder;
  fromFormat: string;
  options: QueueOptions;
  limits: QueueLimits;
}

export interface EnqueueOptions {
  apiKeyId?: string | null;
  idempotencyKey?: string | null;
}

export interface QueueOverview {
  queue: MessageView[];
  errors: MessageView[];
  counts: Record<MessageStatus, number>;
  oldestQueuedAt: string | null;
  oldestAgeMs: number | null;
}

export interface MailQueue {
  enqueue(input: MessageInput, options?: EnqueueOptions): Promise<{ id: string; status: MessageStatus; created: boolean }>;
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
  /** Wakes the local workers (something became due). */
  wake(): void;
  /** Deletes sent messages older than the retention (runs hourly while workers run). */
  cleanup(): Promise<number>;
  start(): Promise<void>;
  /** Stops claiming and waits for in-flight sends to finish and be recorded. */
  stop(): Promise<void>;
}

export function newMessageId(): string {
  // randomUUID draws from a cached pool of random bytes; randomBytes makes a system call for every id.
  return `msg_${Date.now().toString(36)}${randomUUID().replaceAll('-', '').slice(0, 20)}`;
}

/** Exponential backoff with jitter: base·2^(n−1), capped, then a random point in its upper half. */
export function retryDelay(attempt: number, baseMs: number, capMs: number, random: () => number = Math.random): number {
  const exp = Math.min(capMs, baseMs * 2 ** Math.max(0, attempt - 1));
  return Math.round(exp / 2 + (random() * exp) / 2);
}

function requestHash(input: MessageInput): string {
  return createHash('sha256').update(JSON.stringify(input)).digest('base64url');
}

/** The schedule a message of this status belongs to. */
function indexOf(status: MessageStatus): string {
  switch (status) {
    case 'held':
      return HELD_INDEX;
    case 'failed':
      return FAILED_INDEX;
    case 'sent':
      return SENT_INDEX;
    default:
      return MAIL_QUEUE;
  }
}

/** The messages of these ids that exist, each once; read in batches (one pipeline each on Redis). */
async function readMessages(store: Store, ids: Iterable<string>): Promise<Doc<MessageDoc>[]> {
  const unique = [...new Set(ids)];
  const out: Doc<MessageDoc>[] = [];
  for (let i = 0; i < unique.length; i += 500) {
    const docs = await Promise.all(unique.slice(i, i + 500).map((id) => store.get<MessageDoc>(MESSAGES, id)));
    for (const doc of docs) if (doc) out.push(doc);
  }
  return out;
}

function errorOf(d: Diagnosis, now: number, message?: string): MessageError {
  return { code: d.code, message: message ?? d.message, hint: d.hint, ...(d.responseCode !== undefined ? { responseCode: d.responseCode } : {}), at: now };
}

export function createMailQueue(deps: MailQueueDeps): MailQueue {
  const { store, servers, transport, log, metrics } = deps;
  const opts = deps.options;
  const leaseMs = opts.leaseMs ?? 20_000;
  const pollMs = opts.pollMs ?? 200;
  const capMs = opts.maxRetryDelayMs ?? 3_600_000;
  const keepSentMs = opts.keepSentMs ?? 7 * 86_400_000;
  let cleanupTimer: NodeJS.Timeout | null = null;

  let running = false;
  let loop: Promise<void> | null = null;
  const inFlight = new Map<string, Promise<void>>();
  const lease = createLeaseKeeper({ store, queue: MAIL_QUEUE, log, leaseMs, heartbeatMs: opts.heartbeatMs ?? Math.max(50, Math.floor(leaseMs / 3)) });
  const outcomes = createOutcomeWriter({ store, queue: MAIL_QUEUE, lease, log });
  let signal: (() => void) | null = null;
  /** Set while claims fail: an outage is logged once, not at every poll. */
  let claimsFailing = false;

  function wake(): void {
    const s = signal;
    signal = null;
    s?.();
  }

  /**
   * The time a message is kept under in the index of its status: when it is due (waiting), when it was held or
   * failed, when it is to be deleted (sent).
   */
  function indexScore(m: MessageDoc): number {
    switch (m.status) {
      case 'held':
      case 'failed':
        return m.updatedAt;
      case 'sent':
        return (m.sentAt ?? m.updatedAt) + keepSentMs;
      default:
        return m.nextAttemptAt ?? m.updatedAt;
    }
  }

  /** The index moves of a write from status `from` (null: a new message) to `value`. */
  function indexMoves(from: MessageStatus | null, value: MessageDoc): ScheduleMove[] {
    const target = indexOf(value.status);
    const moves: ScheduleMove[] = [{ queue: target, dueAt: indexScore(value) }];
    if (from !== null && indexOf(from) !== target) moves.push({ queue: indexOf(from), dueAt: null });
    return moves;
  }

  /**
   * A compare-and-set write of a message. With `from` (its status before, null for a new message) it moves the
   * message between the status indexes in the same step; without, the indexes are left alone (a write that
   * keeps the message where it is and must not touch its lease).
   */
  async function put(id: string, value: MessageDoc, version: number, from?: MessageStatus | null): Promise<Doc<MessageDoc>> {
    return store.put(MESSAGES, id, value, { ifVersion: version, ...(from !== undefined ? { schedule: indexMoves(from, value), count: placeChanges(from, value, deps.limits) } : {}) });
  }

  async function createMessage(id: string, input: MessageInput, serverId: string, apiKeyId: string | null): Promise<{ status: MessageStatus; created: boolean }> {
    const now = Date.now();
    const enabled = await servers.sendingEnabled();
    const paused = enabled ? await servers.pauseOf(serverId) : null;
    const heldReason: HeldReason | null = !enabled ? 'sending_disabled' : paused ? 'server_paused' : null;
    const doc: MessageDoc = {
      serverId,
      status: heldReason ? 'held' : 'queued',
      heldReason,
      attempts: 0,
      createdAt: now,
      updatedAt: now,
      nextAttemptAt: heldReason ? null : now,
      sentAt: null,
      lastError: null,
      recipients: recipientsOf(input).map((r) => ({ ...r, status: 'pending' })),
      input,
      apiKeyId,
      smtpResponse: null,
      size: messageSize(input),
    };
    try {
      // The message and its place in the queue (or the held index) are written together: there is no moment
      // (nor a crash) where a queued message is not scheduled.
      await put(id, doc, 0, null);
    } catch (err) {
      if (err instanceof VersionConflictError) {
        const existing = await store.get<MessageDoc>(MESSAGES, id);
        return { status: existing?.value.status ?? 'queued', created: false };
      }
      throw queueFullError(err, deps.limits);
    }
    if (!heldReason) wake();
    return { status: doc.status, created: true };
  }

  async function hold(id: string, doc: Doc<MessageDoc>, reason: HeldReason, lastError?: MessageError, attempts?: number): Promise<void> {
    const now = Date.now();
    try {
      await outcomes.write(id, () => put(id, { ...doc.value, status: 'held', heldReason: reason, nextAttemptAt: null, updatedAt: now, ...(lastError ? { lastError } : {}), ...(attempts !== undefined ? { attempts } : {}) }, doc.version, doc.value.status));
    } catch (err) {
      if (!(err instanceof VersionConflictError)) throw err;
      return; // changed meanwhile (resent, deleted): leave the schedule for the next claim to re-read
    }
    // A resume (or the switch turned on) between our check and this write would have missed this message:
    // look again at the stored state, not a cache, and release it if the reason is gone.
    const stillHeld = reason === 'server_paused' ? (await store.get(PAUSES, doc.value.serverId)) !== null : !(await servers.sendingEnabled());
    if (!stillHeld) await release((m) => m.serverId === doc.value.serverId && m.heldReason === reason, [id]);
  }

  /** Held messages matching `filter` (among `only`, or every held one) → queued now. */
  async function release(filter: (m: MessageDoc) => boolean, only?: string[]): Promise<number> {
    let released = 0;
    const ids = only ?? (await store.scheduled(HELD_INDEX, { limit: ALL })).map((e) => e.id);
    for (const doc of await readMessages(store, ids)) {
      if (doc.value.status !== 'held' || !filter(doc.value)) continue;
      const now = Date.now();
      try {
        await put(doc.id, { ...doc.value, status: 'queued', heldReason: null, nextAttemptAt: now, updatedAt: now }, doc.version, 'held');
      } catch (err) {
        if (err instanceof VersionConflictError) continue;
        throw err;
      }
      released++;
    }
    if (released) wake();
    return released;
  }

  async function deliver(id: string): Promise<void> {
    const doc = await store.get<MessageDoc>(MESSAGES, id);
    if (!doc || doc.value.status === 'sent' || doc.value.status === 'failed' || doc.value.status === 'held') {
      // Stale index entry (deleted, finished, held by an admin action): drop it.
      await lease.end(id);
      await store.unschedule(MAIL_QUEUE, id);
      return;
    }
    const m = doc.value;
    const server = await servers.resolve(m.serverId);
    const now = Date.now();
    if (!server) {
      const d: Diagnosis = { code: 'server_deleted', class: 'permanent', message: `SMTP server ${m.serverId} no longer exists`, hint: 'Resend the message to another server, or recreate the server.' };
      await finish(id, doc, m.status, { ...m, status: 'failed', lastError: errorOf(d, now), updatedAt: now, nextAttemptAt: null });
      metrics?.messagesTotal.inc({ outcome: 'failed' });
      return;
    }
    if (!(await servers.sendingEnabled())) return hold(id, doc, 'sending_disabled');
    if (await servers.pauseOf(server.id)) return hold(id, doc, 'server_paused');

    // `sending` is written only when a delivery takes a while: fast ones go from queued straight to sent,
    // one store write less per message. The attempt is counted in the final write either way.
    const attempts = m.attempts + 1;
    const base: MessageDoc = { ...m, status: 'sending', heldReason: null, attempts, updatedAt: now };
    let sending: Doc<MessageDoc> = { id, value: base, version: doc.version };
    let marking: Promise<void> | null = null;
    const markTimer = setTimeout(() => {
      marking = put(id, { ...base, updatedAt: Date.now() }, doc.version).then(
        (d) => {
          sending = d;
        },
        (err: unknown) => {
          if (!(err instanceof VersionConflictError)) log.warn({ err, messageId: id }, 'marking a message as sending failed');
        },
      );
    }, SENDING_MARK_AFTER_MS);
    const settleMark = async () => {
      clearTimeout(markTimer);
      if (marking) await marking;
    };
    const composed = composeMessage(m.input, server, deps.fromFormat);
    const fromDomain = server.fromAddress.slice(server.fromAddress.lastIndexOf('@') + 1);
    try {
      const result = await transport.send(server, composed, `<${id}@${fromDomain}>`);
      await settleMark();
      const done = Date.now();
      const accepted = new Set(result.accepted.map((a) => a.toLowerCase()));
      const recipients = m.recipients.map((r): RecipientResult => {
        if (accepted.has(r.address.toLowerCase())) return { address: r.address, kind: r.kind, status: 'accepted' };
        const rej = result.rejected.find((x) => x.address.toLowerCase() === r.address.toLowerCase());
        return { address: r.address, kind: r.kind, status: 'rejected', ...(rej?.responseCode ? { responseCode: rej.responseCode } : {}), ...(rej?.response ? { response: rej.response } : {}) };
      });
      // The body has done its job: it is not kept at rest for the retention period (nothing shows or resends it).
      const { text: _text, html: _html, ...delivered } = sending.value.input;
      await finish(id, sending, m.status, { ...sending.value, input: delivered, status: 'sent', recipients, sentAt: done, updatedAt: done, nextAttemptAt: null, smtpResponse: result.response.slice(0, 500) });
      metrics?.messagesTotal.inc({ outcome: 'sent' });
    } catch (err) {
      await settleMark();
      const d = diagnose(err, { host: server.host, port: server.port, protocol: server.protocol, tls: server.tls });
      const at = Date.now();
      const rejectedErrors = (err as { rejectedErrors?: { recipient?: string; responseCode?: number; response?: string }[] }).rejectedErrors ?? [];
      const recipients = m.recipients.map((r): RecipientResult => {
        const e = rejectedErrors.find((x) => x.recipient?.toLowerCase() === r.address.toLowerCase());
        return e ? { address: r.address, kind: r.kind, status: 'rejected', ...(e.responseCode ? { responseCode: e.responseCode } : {}), ...(e.response ? { response: e.response } : {}) } : r;
      });
      if (d.class === 'credentials') {
        await servers.pause(server.id, { reason: d.hint, code: d.code });
        // The attempt is not the message's fault: it keeps its attempts for when the server is fixed.
        await hold(id, sending, 'server_paused', errorOf(d, at), m.attempts);
        log.warn({ messageId: id, serverId: server.id, code: d.code }, 'credentials rejected; server paused, message held');
        return;
      }
      if (d.class === 'permanent') {
        await finish(id, sending, m.status, { ...sending.value, status: 'failed', recipients, lastError: errorOf(d, at), updatedAt: at, nextAttemptAt: null });
        metrics?.messagesTotal.inc({ outcome: 'failed' });
        return;
      }
      if (attempts >= opts.maxAttempts) {
        await finish(id, sending, m.status, { ...sending.value, status: 'failed', recipients, lastError: errorOf(d, at, `gave up after ${attempts} attempts: ${d.message}`), updatedAt: at, nextAttemptAt: null });
        metrics?.messagesTotal.inc({ outcome: 'failed' });
        return;
      }
      const dueAt = at + retryDelay(attempts, opts.retryBaseMs, capMs);
      try {
        await outcomes.write(id, () => put(id, { ...sending.value, status: 'deferred', recipients, lastError: errorOf(d, at), updatedAt: at, nextAttemptAt: dueAt }, sending.version, m.status));
      } catch (e) {
        if (!(e instanceof VersionConflictError)) throw e;
        return;
      }
      metrics?.messagesTotal.inc({ outcome: 'deferred' });
    }
  }

  /** Final state (sent or failed), written together with the move from the queue to the index of that state. */
  async function finish(id: string, doc: Doc<MessageDoc>, from: MessageStatus, value: MessageDoc): Promise<void> {
    try {
      await outcomes.write(id, () => put(id, value, doc.version, from));
    } catch (err) {
      if (!(err instanceof VersionConflictError)) throw err;
    }
  }

  /**
   * The embedded store writes a message and its schedule entries to separate files; a kill -9 in between leaves
   * a message out of the index of its status (or still in the one it left). At start, with the data folder
   * locked to this process (so no other worker holds a lease), every message is put in the index of its status
   * and taken out of the others, and entries of deleted messages are dropped: waiting messages at their due time,
   * the others at their index time. This also builds the indexes for messages written before they existed.
   */
  async function reindexOnFileStore(): Promise<void> {
    const now = Date.now();
    const entries = new Map<string, Map<string, number>>();
    for (const queue of STATUS_INDEXES) entries.set(queue, new Map((await store.scheduled(queue, { limit: ALL })).map((e) => [e.id, e.dueAt])));
    let waiting = 0;
    let changed = 0;
    const live = new Set<string>();
    const places = new PlaceTally();
    const counted = await readPlaceCounters(store);
    for (const doc of await store.list<MessageDoc>(MESSAGES)) {
      const m = doc.value;
      live.add(doc.id);
      places.add(m);
      const target = indexOf(m.status);
      const score = target === MAIL_QUEUE ? Math.max(now, m.nextAttemptAt ?? now) : indexScore(m);
      if (target === MAIL_QUEUE) waiting++;
      if (entries.get(target)!.get(doc.id) !== score) {
        await store.schedule(target, doc.id, score);
        changed++;
      }
      for (const queue of STATUS_INDEXES) {
        if (queue === target || !entries.get(queue)!.has(doc.id)) continue;
        await store.unschedule(queue, doc.id);
        changed++;
      }
    }
    for (const [queue, ids] of entries) {
      for (const id of ids.keys()) {
        if (live.has(id)) continue;
        await store.unschedule(queue, id);
        changed++;
      }
    }
    // The file store keeps counters in memory only: they are counted here, with the data folder locked to us.
    await saveFileStoreCount(store, places, counted);
    if (changed) log.info({ waiting, changed }, 'mail indexes brought in line with the messages at start');
  }

  /**
   * On Redis every write moves a message between the indexes atomically; only messages written by versions
   * before the held, failed and sent indexes existed are missing from them. They are added once (one instance,
   * under a lock; a marker document records that it is done). Each is re-put with compare-and-set together with
   * its index entry, so a message changed meanwhile by another instance is never put in a stale index. Waiting
   * messages were already in the queue's schedule, and their leases are left alone.
   */
  async function buildIndexesOnRedis(): Promise<void> {
    if (await store.get(MAIL_META, INDEXES_MARKER)) return;
    const lock = await store.acquireLock('mail-indexes', 60_000);
    if (!lock) return; // another instance is building them
    try {
      if (await store.get(MAIL_META, INDEXES_MARKER)) return;
      let indexed = 0;
      let seen = 0;
      for (const listed of await store.list<MessageDoc>(MESSAGES)) {
        let doc: Doc<MessageDoc> | null = listed;
        while (doc && indexOf(doc.value.status) !== MAIL_QUEUE) {
          try {
            await store.put(MESSAGES, doc.id, doc.value, { ifVersion: doc.version, schedule: { queue: indexOf(doc.value.status), dueAt: indexScore(doc.value) } });
            indexed++;
            break;
          } catch (err) {
            if (!(err instanceof VersionConflictError)) throw err;
            // Changed by a current version, which indexed it with that write; look again to be sure.
            doc = await store.get<MessageDoc>(MESSAGES, doc.id);
          }
        }
        if (++seen % 500 === 0) await lock.extend(60_000);
      }
      await store.put(MAIL_META, INDEXES_MARKER, { builtAt: Date.now(), indexed });
      if (indexed) log.info({ indexed }, 'held, failed and sent messages indexed');
    } finally {
      await lock.release();
    }
  }

  /**
   * Deletes sent messages past their retention; one instance at a time (a store lock). The sent index is keyed
   * by deletion time, so this claims exactly the expired ones, a batch at a time, and never reads the others.
   */
  async function cleanup(): Promise<number> {
    const lock = await store.acquireLock('mail-cleanup', 60_000);
    if (!lock) return 0;
    let removed = 0;
    try {
      for (;;) {
        const ids = await store.claimDue(SENT_INDEX, Date.now(), 60_000, CLEANUP_BATCH);
        for (const id of ids) {
          const doc = await store.get<MessageDoc>(MESSAGES, id);
          if (!doc || doc.value.status !== 'sent') {
            // Stale entry: the message is gone (or, against every write's moves, not sent): drop it.
            await store.unschedule(SENT_INDEX, id);
            continue;
          }
          const dueAt = indexScore(doc.value);
          if (dueAt > Date.now()) {
            // Indexed under a shorter retention than the current one: back to its time.
            await store.schedule(SENT_INDEX, id, dueAt);
            continue;
          }
          try {
            if (await store.delete(MESSAGES, id, { ifVersion: doc.version, schedule: { queue: SENT_INDEX, dueAt: null } })) removed++;
          } catch (err) {
            // Changed meanwhile: its claim lapses and the next sweep looks again.
            if (!(err instanceof VersionConflictError)) throw err;
          }
        }
        if (ids.length < CLEANUP_BATCH || !(await lock.extend(60_000))) break;
      }
    } finally {
      await lock.release();
    }
    if (removed) log.info({ removed }, 'deleted sent messages past their retention');
    return removed;
  }

  async function run(): Promise<void> {
    // Claims are batched: with work in flight, claim again only when a quarter of the slots are free, so a
    // busy worker makes one claim round trip per several messages instead of one per message.
    const batch = Math.max(1, Math.floor(opts.concurrency / 4));
    while (running) {
      const free = opts.concurrency - inFlight.size;
      let claimed = 0;
      if (free >= batch || (free > 0 && inFlight.size === 0)) {
        let ids: string[] = [];
        try {
          ids = await store.claimDue(MAIL_QUEUE, Date.now(), leaseMs, free);
          claimsFailing = false;
        } catch (err) {
          if (!claimsFailing) log.error({ err }, 'claiming due messages failed; trying again at every poll');
          claimsFailing = true;
        }
        claimed = ids.length;
        for (const id of ids) {
          lease.hold(id);
          const p = deliver(id)
            .catch((err: unknown) => outcomes.failed(id, err))
            .finally(() => {
              void lease.end(id);
              inFlight.delete(id);
              wake();
            });
          inFlight.set(id, p);
        }
      }
      if (!running) break;
      // Nothing due, or not enough free slots for a batch: wait for a finished send, a local enqueue, or the poll.
      if (claimed === 0 || opts.concurrency - inFlight.size < batch) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(() => {
            if (signal === done) signal = null;
            resolve();
          }, claimed === 0 ? pollMs : leaseMs);
          const done = () => {
            clearTimeout(timer);
            resolve();
          };
          signal = done;
        });
      }
    }
  }

  async function getDoc(id: string): Promise<Doc<MessageDoc>> {
    const doc = await store.get<MessageDoc>(MESSAGES, id);
    if (!doc) throw new AppError('not_found', { message: `No message ${id}.` });
    return doc;
  }

  async function audit(actor: Actor, action: string, target: string, detail?: Record<string, string | number>): Promise<void> {
    await deps.audit?.record({ actor, action, target, outcome: 'success', ...(detail ? { detail } : {}) });
  }

  return {
    async enqueue(input, options = {}) {
      const serverId = input.serverId ?? (await servers.defaultServerId());
      if (!serverId) throw new AppError('bad_request', { message: 'No SMTP server is configured: add one at /admin/smtp-servers first.' });
      if (!(await servers.resolve(serverId))) {
        throw new AppError('validation_failed', { message: `serverId: no SMTP server ${serverId}`, details: [{ field: 'serverId', message: 'no such SMTP server' }] });
      }
      const { serverId: _omit, ...content } = await withTextPart(input);
      const apiKeyId = options.apiKeyId ?? null;
      let id = newMessageId();
      if (options.idempotencyKey) {
        const key = `${apiKeyId ?? 'local'}:${options.idempotencyKey}`;
        const hash = requestHash(input);
        try {
          await store.put(IDEMPOTENCY, key, { messageId: id, hash, at: Date.now() }, { ifVersion: 0 });
        } catch (err) {
          if (!(err instanceof VersionConflictError)) throw err;
          const existing = await store.get<{ messageId: string; hash: string }>(IDEMPOTENCY, key);
          if (!existing) throw new AppError('conflict', { message: 'Idempotency-Key is being used by a concurrent request; retry.' });
          if (existing.value.hash !== hash) throw new AppError('conflict', { message: 'This Idempotency-Key was used with a different request.' });
          id = existing.value.messageId;
          const message = await store.get<MessageDoc>(MESSAGES, id);
          // A crash between the key and the message leaves the key alone: create the message now, same id.
          if (message) return { id, status: message.value.status, created: false };
        }
      }
      const r = await createMessage(id, content, serverId, apiKeyId);
      return { id, ...r };
    },

    async get(id) {
      const doc = await getDoc(id);
      return toView(id, doc.value);
    },

    async overview(limit = 200) {
      // The backlog (waiting and held) is read in full for its counts and oldest age; failed and sent are only
      // counted, and the error queue is the newest `limit` failures.
      const [waiting, held, failedEntries, failed, sent] = await Promise.all([
        store.scheduled(MAIL_QUEUE, { limit: ALL }),
        store.scheduled(HELD_INDEX, { limit: ALL }),
        store.scheduled(FAILED_INDEX, { limit, newestFirst: true }),
        store.scheduleStats(FAILED_INDEX),
        store.scheduleStats(SENT_INDEX),
      ]);
      const counts: Record<MessageStatus, number> = { queued: 0, sending: 0, sent: sent.count, deferred: 0, held: 0, failed: failed.count };
      const queue: MessageView[] = [];
      let oldest: number | null = null;
      for (const doc of await readMessages(store, [...waiting, ...held].map((e) => e.id))) {
        const m = doc.value;
        // A stale entry (a finished message a worker has not dropped yet) is counted by its own index.
        if (m.status === 'sent' || m.status === 'failed') continue;
        counts[m.status]++;
        queue.push(toView(doc.id, m));
        if (oldest === null || m.createdAt < oldest) oldest = m.createdAt;
      }
      const errors = (await readMessages(store, failedEntries.map((e) => e.id))).filter((d) => d.value.status === 'failed');
      for (const [state, n] of Object.entries(counts)) metrics?.queueDepth.set({ state }, n);
      const byAge = (a: MessageView, b: MessageView) => a.createdAt.localeCompare(b.createdAt);
      return {
        queue: queue.sort(byAge).slice(0, limit),
        // Newest failure first, in the index's order.
        errors: errors.map((d) => toView(d.id, d.value)),
        counts,
        oldestQueuedAt: iso(oldest),
        oldestAgeMs: oldest === null ? null : Date.now() - oldest,
      };
    },

    async resend(id, actor) {
      const doc = await getDoc(id);
      const m = doc.value;
      if (m.status === 'sent' || m.status === 'sending') throw new AppError('conflict', { message: `The message is ${m.status}; only waiting or failed messages can be resent.` });
      const now = Date.now();
      await put(id, { ...m, status: 'queued', heldReason: null, attempts: m.status === 'failed' ? 0 : m.attempts, nextAttemptAt: now, updatedAt: now }, doc.version, m.status);
      wake();
      await audit(actor, 'mail.resend', `message:${id}`, { previousStatus: m.status });
      return toView(id, (await getDoc(id)).value);
    },

    async remove(id, actor) {
      const doc = await getDoc(id);
      if (doc.value.status === 'sending') throw new AppError('conflict', { message: 'The message is being sent right now; try again in a moment.' });
      // Out of every index, not only its status's: nothing can be left pointing at a deleted message.
      await store.delete(MESSAGES, id, { ifVersion: doc.version, schedule: STATUS_INDEXES.map((queue) => ({ queue, dueAt: null })), count: deleteChanges(doc.value) });
      await audit(actor, 'mail.delete', `message:${id}`, { status: doc.value.status });
    },

    async flush(actor) {
      let n = 0;
      const now = Date.now();
      const waiting = await store.scheduled(MAIL_QUEUE, { limit: ALL });
      for (const doc of await readMessages(store, waiting.map((e) => e.id))) {
        if (doc.value.status !== 'deferred' && doc.value.status !== 'queued') continue;
        try {
          await put(doc.id, { ...doc.value, status: 'queued', nextAttemptAt: now, updatedAt: now }, doc.version, doc.value.status);
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
      const n = await release((m) => m.serverId === serverId && m.heldReason === 'server_paused');
      if (n) log.info({ serverId, messages: n }, 'server resumed; held messages released');
      return n;
    },

    async releaseDisabledHolds() {
      if (!(await servers.sendingEnabled())) return 0;
      return release((m) => m.heldReason === 'sending_disabled');
    },

    wake,

    cleanup,

    async start() {
      if (running) return;
      if (!store.durableIndexes) await reindexOnFileStore();
      else await buildIndexesOnRedis().then(() => buildCountersOnRedis(store, log, [MAIL_QUEUE, HELD_INDEX], MESSAGES));
      running = true;
      lease.start();
      loop = run();
      const sweep = () => void cleanup().catch((err: unknown) => log.warn({ err }, 'cleaning up sent messages failed'));
      cleanupTimer = setInterval(sweep, 3_600_000);
      cleanupTimer.unref();
      sweep();
    },

    async stop() {
      running = false;
      wake();
      await loop;
      loop = null;
      await outcomes.stop();
      await Promise.allSettled([...inFlight.values()]);
      await lease.stop();
      if (cleanupTimer) clearInterval(cleanupTimer);
      cleanupTimer = null;
    },
  };
}
