import { WAITING_MESSAGES } from '../mail/queue-limits.js';
import type { Metrics } from '../metrics.js';
import type { Store } from '../store/store.js';
import { grantCounts } from '../tokens/grant-index.js';
import { GRANTS, type GrantRecord } from '../tokens/grants.js';
import type { Notifier } from './events.js';
import { EVENTS, STATES, type EventDoc, type StateDoc } from './model.js';

/**
 * The periodic checks (every minute on every instance; transitions make the events unique): client secrets that
 * expire or expired, Google apps still in Testing, the queue's backlog, grants that need re-authorization (a
 * catch-up in case the process that saw the refusal died before reporting it), and the grant gauges.
 */

export type WarningSource = () => Promise<Array<{ kind: string; target: string; message: string }>>;

/** Backlog starts at this share of MAILGATE_QUEUE_MAX_MESSAGES and ends below the second (no flapping). */
const BACKLOG_ON = 0.8;
const BACKLOG_OFF = 0.5;
/** Delivered events are kept this long (the page and de-duplication need no more), swept hourly. */
const KEEP_EVENTS_MS = 7 * 86_400_000;
const SWEEP_EVERY_MS = 3_600_000;

export function createWatch(deps: {
  store: Store;
  notifier: Notifier;
  warnings: WarningSource;
  metrics?: Metrics | undefined;
  baseUrl: string;
  queueLimits: { maxMessages: number };
  /** Reports a grant back to `ok` (grant.recovered), as the token listener does. */
  recovered?: (grant: { serverId: string; mailbox: string }) => Promise<void>;
}) {
  const { store, notifier } = deps;

  async function secrets(warnings: Awaited<ReturnType<WarningSource>>): Promise<void> {
    const seen = { secret: new Set<string>(), testing: new Set<string>() };
    for (const w of warnings) {
      const link = `${deps.baseUrl}/admin/oauth-integrations/${encodeURIComponent(w.target.split(':')[1] ?? '')}`;
      if (w.kind === 'secret_expiring' || w.kind === 'secret_expired') {
        seen.secret.add(w.target);
        const expired = w.kind === 'secret_expired';
        await notifier.transition({
          dimension: 'secret',
          target: w.target,
          to: expired ? 'expired' : 'expiring',
          event: {
            type: expired ? 'integration.secret_expired' : 'integration.secret_expiring',
            target: w.target,
            message: w.message,
            hint: `Rotate the client secret: ${link}`,
          },
        });
      } else if (w.kind === 'google_in_testing') {
        seen.testing.add(w.target);
        await notifier.transition({
          dimension: 'testing',
          target: w.target,
          to: 'testing',
          event: {
            type: 'integration.google_in_testing',
            target: w.target,
            message: w.message,
            hint: `Publish the app in the Google Cloud console (refresh tokens of apps in Testing expire after 7 days): ${link}`,
          },
        });
      } else if (w.kind === 'needs_reauth') {
        await notifier.transition({
          dimension: 'grant',
          target: w.target,
          to: 'needs_reauth',
          event: {
            type: 'grant.needs_reauth',
            target: w.target,
            serverId: w.target.split(':')[1] ?? null,
            message: w.message,
            hint: `Press Re-authorize on ${deps.baseUrl}/admin/smtp-servers/${encodeURIComponent(w.target.split(':')[1] ?? '')}`,
          },
        });
      }
    }
    // Problems that went away (a rotated secret, a published app): back to ok without an event.
    for (const dimension of ['secret', 'testing'] as const) {
      for (const s of await store.list<StateDoc>(STATES, { prefix: `${dimension}:` })) {
        const target = s.id.slice(dimension.length + 1);
        if (s.value.state !== 'ok' && !seen[dimension].has(target))
          await notifier.transition({ dimension, target, to: 'ok', event: null });
      }
    }
  }

  async function backlog(): Promise<void> {
    const [waiting = 0] = await store.counters([WAITING_MESSAGES]);
    const max = deps.queueLimits.maxMessages;
    const state = await notifier.stateOf('backlog', 'queue:mail');
    const on = state === 'backlog' ? waiting >= max * BACKLOG_OFF : waiting >= max * BACKLOG_ON;
    await notifier.transition({
      dimension: 'backlog',
      target: 'queue:mail',
      to: on ? 'backlog' : 'ok',
      event: on
        ? {
            type: 'queue.backlog',
            target: 'queue:mail',
            message: `${waiting} messages wait to be delivered (the limit is ${max}).`,
            hint: `Check the mail queue and the servers' state: ${deps.baseUrl}/admin/mail-queue`,
          }
        : null,
    });
  }

  /**
   * The other half of the needs_reauth catch-up: a grant reported as needing re-authorization that is active
   * again (stored by a process that died before reporting it, or by one whose listener failed) is reported as
   * recovered here; the transition keeps it to one event across instances.
   */
  async function recoveredGrants(): Promise<void> {
    if (!deps.recovered) return;
    const prefix = 'grant:smtp_server:';
    for (const s of await store.list<StateDoc>(STATES, { prefix })) {
      if (s.value.state !== 'needs_reauth') continue;
      const grant = await store.get<GrantRecord>(GRANTS, s.id.slice(prefix.length));
      if (grant?.value.status === 'active')
        await deps.recovered({ serverId: grant.value.serverId, mailbox: grant.value.mailbox });
    }
  }

  async function gauges(now: number): Promise<void> {
    const metrics = deps.metrics;
    if (!metrics) return;
    // Counters kept with every grant write (src/tokens/grant-index.ts): one read whatever the number of grants.
    for (const [state, n] of Object.entries(await grantCounts(store))) metrics.grantStates.set({ state }, n);
    metrics.notifyChecks.set(now / 1000);
  }

  let sweptAt = 0;
  async function sweep(now: number): Promise<void> {
    if (now - sweptAt < SWEEP_EVERY_MS) return;
    sweptAt = now;
    for (const e of await store.list<EventDoc>(EVENTS))
      if (e.value.fannedOut && Date.parse(e.value.event.occurredAt) < now - KEEP_EVENTS_MS)
        await store.delete(EVENTS, e.id, { ifVersion: e.version }).catch(() => false);
  }

  return {
    async run(now: number): Promise<void> {
      await secrets(await deps.warnings());
      await recoveredGrants();
      await backlog();
      await gauges(now);
      await sweep(now);
    },
  };
}
