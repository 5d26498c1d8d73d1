import type { AuditRecorder } from '../admin/types.js';
import type { Clock, Timer } from '../clock.js';
import type { Keyring } from '../crypto/keyring.js';
import { AppError } from '../errors.js';
import type { Logger } from '../log.js';
import type { MailServices } from '../mail/service.js';
import type { Metrics } from '../metrics.js';
import type { EgressGuard } from '../net/connect.js';
import type { Store } from '../store/store.js';
import { ChannelService } from './channels.js';
import { ALERT_SENDER, healthyServerFor, sendAlertEmail, type AlertRoute } from './email.js';
import { eventIdFor, Notifier } from './events.js';
import { NOTIFY_CHANNEL, type ChannelDoc, type NotifyEvent } from './model.js';
import { createAttention, type Attention } from './attention.js';
import { createWatch, type WarningSource } from './watch.js';
import { postWebhook } from './webhook.js';
import { NotifyWorker } from './worker.js';
import { grantEvents, type GrantEvents } from './grant-events.js';

/** Notifications, assembled: channels, the emitter, the durable delivery worker, the periodic checks and the banner's data. */

export interface NotifyTuning {
  /** Delivery worker poll (default 1 s). */
  pollMs?: number;
  /** Webhook answer deadline (default 10 s). */
  webhookTimeoutMs?: number;
  /** Backoff between attempts of one delivery (default 5 s doubling to 30 min). */
  backoffBaseMs?: number;
  backoffCapMs?: number;
  /** Periodic checks: secrets, Google in testing, queue backlog, grant gauges (default 60 s). */
  watchMs?: number;
  /** How long a banner answer is reused (default 15 s). */
  attentionTtlMs?: number;
}

export interface NotifyServicesDeps {
  store: Store;
  keyring: Keyring;
  audit: AuditRecorder;
  log: Logger;
  clock: Clock;
  metrics?: Metrics | undefined;
  mail: Pick<MailServices, 'servers' | 'queue'>;
  route: AlertRoute;
  egress: EgressGuard;
  egressFetch: typeof fetch;
  warnings: WarningSource;
  /** A target's display name (server or integration name), for the banner. */
  nameOf: (target: string) => Promise<string>;
  baseUrl: string;
  queueLimits: { maxMessages: number };
  tuning?: NotifyTuning | undefined;
}

export interface NotifyServices {
  channels: ChannelService;
  notifier: Notifier;
  /** Hooks for the token service's listener. */
  grants: GrantEvents;
  attention: Attention;
  worker: NotifyWorker;
  /** Sends a `test` event to one channel now (not queued) and says how it went. */
  test(channelId: string): Promise<{ ok: boolean; error?: string }>;
  /** The server email alerts would go through now, or null (the page says so plainly). */
  alertServer(): Promise<{ id: string; name: string } | null>;
  /** A server's pause changed (read from the store): server.paused / server.resumed. */
  serverChanged(serverId: string): Promise<void>;
  /** A message moved to failed (`sender`: the API key id, or ALERT_SENDER for alerts, which are not reported). */
  messageFailed(messageId: string, serverId: string, error: string | null, sender?: string | null): Promise<void>;
  /** Runs the periodic checks once (tests call it after moving the clock). */
  check(): Promise<void>;
  start(options: { workers: boolean }): Promise<void>;
  stop(): Promise<void>;
}

export function createNotifyServices(deps: NotifyServicesDeps): NotifyServices {
  const { store, log, clock, mail } = deps;
  const t = deps.tuning ?? {};
  const webhookTimeoutMs = t.webhookTimeoutMs ?? 10_000;
  const channels = new ChannelService({
    store,
    keyring: deps.keyring,
    audit: deps.audit,
    clock,
    egress: deps.egress,
  });
  // The worker is built below; the notifier wakes it through this indirection.
  const wakeWorker = { wake: () => undefined as void };
  const notifier = new Notifier({ store, clock, log, wake: () => wakeWorker.wake() });
  const attention = createAttention({
    warnings: deps.warnings,
    nameOf: deps.nameOf,
    clock,
    ttlMs: t.attentionTtlMs ?? 15_000,
  });
  notifier.onEmit(() => attention.forget());

  async function deliver(
    channel: { id: string; doc: ChannelDoc },
    delivery: { id: string; event: NotifyEvent; serverId: string | null },
  ): Promise<void> {
    if (channel.doc.type === 'webhook') {
      await postWebhook(
        deps.egressFetch,
        { url: channel.doc.url ?? '', secret: channels.secretOf(channel.id, channel.doc) },
        delivery.event,
        { nowSeconds: Math.floor(clock.now() / 1000), timeoutMs: webhookTimeoutMs },
      );
      return;
    }
    await sendAlertEmail(mail, deps.route, {
      id: delivery.id,
      to: channel.doc.to ?? [],
      event: delivery.event,
      serverId: delivery.serverId,
    });
  }

  const worker = new NotifyWorker({
    store,
    channels,
    deliver,
    clock,
    log,
    metrics: deps.metrics,
    pollMs: t.pollMs ?? 1000,
    // Longer than a webhook may take, so a live delivery is never claimed twice.
    leaseMs: webhookTimeoutMs + 30_000,
    backoff: { baseMs: t.backoffBaseMs ?? 5000, capMs: t.backoffCapMs ?? 30 * 60_000 },
  });
  wakeWorker.wake = () => worker.wake();

  const serverLink = (id: string) => `${deps.baseUrl}/admin/smtp-servers/${encodeURIComponent(id)}`;
  const grants = grantEvents({ notifier, serverLink });
  const watch = createWatch({
    store,
    notifier,
    warnings: deps.warnings,
    metrics: deps.metrics,
    baseUrl: deps.baseUrl,
    queueLimits: deps.queueLimits,
    recovered: (g) => grants.recovered(g),
  });

  let watchTimer: Timer | undefined;
  let watchRunning: Promise<void> | undefined;
  let unsubscribe: (() => Promise<void>) | undefined;
  let running = false;

  return {
    channels,
    notifier,
    grants,
    attention,
    worker,
    async test(channelId) {
      const doc = await channels.doc(channelId);
      if (!doc) throw new AppError('not_found', { message: `No notification channel ${channelId}.` });
      const now = clock.now();
      const event: NotifyEvent = {
        id: eventIdFor(`test:${channelId}:${now}:${Math.random()}`),
        type: 'test',
        occurredAt: new Date(now).toISOString(),
        target: `notification_channel:${channelId}`,
        message: `Test notification from mailgate to channel "${doc.name}".`,
        hint: 'Nothing to do: this message only shows that the channel works.',
      };
      try {
        await deliver({ id: channelId, doc }, { id: event.id, event, serverId: null });
        return { ok: true };
      } catch (err) {
        return { ok: false, error: err instanceof Error ? err.message : String(err) };
      }
    },
    alertServer: () => healthyServerFor(mail, deps.route, null),
    async serverChanged(serverId) {
      const pause = await mail.servers
        .isPausedNow(serverId)
        .then((paused) => (paused ? mail.servers.pauseOf(serverId) : null));
      // A pause for a revoked grant is reported as grant.needs_reauth (and its end as grant.recovered): one alert, not two.
      if (pause?.code === 'oauth_needs_reauth') return;
      const target = `smtp_server:${serverId}`;
      await notifier.transition({
        dimension: 'pause',
        target,
        to: pause ? 'paused' : 'ok',
        event: pause
          ? {
              type: 'server.paused',
              target,
              serverId,
              message: `SMTP server ${serverId} is paused: ${pause.reason}`,
              hint: `Its mail is held until its credentials change: ${serverLink(serverId)}`,
            }
          : {
              type: 'server.resumed',
              target,
              serverId,
              message: `SMTP server ${serverId} sends again.`,
              hint: 'Held mail is released.',
            },
      });
    },
    async messageFailed(messageId, serverId, error, sender) {
      if (sender === ALERT_SENDER) return;
      await notifier.emitOnce(`message:${messageId}`, {
        type: 'message.failed',
        target: `message:${messageId}`,
        serverId,
        message: `A message through SMTP server ${serverId} failed permanently${error ? `: ${error}` : ''}.`.slice(
          0,
          500,
        ),
        hint: `Resend it from the error queue once the cause is fixed: ${deps.baseUrl}/admin/mail-queue`,
      });
    },
    check: () => watch.run(clock.now()),
    async start(options) {
      unsubscribe = await store.subscribe(NOTIFY_CHANNEL, () => attention.forget());
      if (!options.workers) return;
      running = true;
      await worker.rebuildSchedules();
      worker.start();
      const tick = () => {
        if (!running) return;
        watchRunning = watch
          .run(clock.now())
          .catch((err: unknown) => log.error({ err }, 'notification checks failed'))
          .finally(() => {
            if (running) watchTimer = clock.setTimeout(tick, t.watchMs ?? 60_000);
          });
      };
      watchTimer = clock.setTimeout(tick, 0);
    },
    async stop() {
      running = false;
      watchTimer?.cancel();
      await watchRunning;
      await worker.stop();
      await unsubscribe?.();
    },
  };
}
