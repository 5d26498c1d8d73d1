import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/**
 * Prometheus metrics of one process, served at /metrics. A registry per app (not the global one) so tests
 * can build several apps in one process.
 */
export interface Metrics {
  registry: Registry;
  httpRequests: Counter<'method' | 'route' | 'status'>;
  httpDuration: Histogram<'method' | 'route'>;
  messagesTotal: Counter<'outcome'>;
  queueDepth: Gauge<'state'>;
  tokenRefreshes: Counter<'outcome'>;
  /** OAuth grants by state (active, needs_reauth, refresh_failing), set by the notification checks. */
  grantStates: Gauge<'state'>;
  /** Notification deliveries by channel id, channel type and result (delivered, failed). */
  notificationDeliveries: Counter<'channel' | 'type' | 'result'>;
  /** When the notification checks last ran (unix seconds): an alert can tell that they stopped. */
  notifyChecks: Gauge;
}

export function createMetrics(options: { defaultMetrics?: boolean } = {}): Metrics {
  const registry = new Registry();
  if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: registry, prefix: 'mailgate_' });
  return {
    registry,
    httpRequests: new Counter({
      name: 'mailgate_http_requests_total',
      help: 'HTTP requests by route and status',
      labelNames: ['method', 'route', 'status'],
      registers: [registry],
    }),
    httpDuration: new Histogram({
      name: 'mailgate_http_request_duration_seconds',
      help: 'HTTP request duration',
      labelNames: ['method', 'route'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers: [registry],
    }),
    messagesTotal: new Counter({
      name: 'mailgate_messages_total',
      help: 'Messages by final outcome (sent, failed, deferred)',
      labelNames: ['outcome'],
      registers: [registry],
    }),
    queueDepth: new Gauge({
      name: 'mailgate_queue_messages',
      help: 'Messages in the queue by state',
      labelNames: ['state'],
      registers: [registry],
    }),
    tokenRefreshes: new Counter({
      name: 'mailgate_token_refreshes_total',
      help: 'Token refresh requests by outcome',
      labelNames: ['outcome'],
      registers: [registry],
    }),
    grantStates: new Gauge({
      name: 'mailgate_oauth_grants',
      help: 'OAuth grants by state (active, needs_reauth, refresh_failing)',
      labelNames: ['state'],
      registers: [registry],
    }),
    notificationDeliveries: new Counter({
      name: 'mailgate_notification_deliveries_total',
      help: 'Notification deliveries by channel, channel type and result (delivered, failed)',
      labelNames: ['channel', 'type', 'result'],
      registers: [registry],
    }),
    notifyChecks: new Gauge({
      name: 'mailgate_notification_checks_last_run_seconds',
      help: 'When the notification checks last ran (unix time)',
      registers: [registry],
    }),
  };
}
