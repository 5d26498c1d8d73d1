import type { AuditRecorder } from '../admin/types.js';
import type { Clock } from '../clock.js';
import type { Config } from '../config.js';
import type { Keyring } from '../crypto/keyring.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import type { EgressGuard } from '../net/connect.js';
import type { Store } from '../store/store.js';
import type { AccessTokenSource, GrantSource } from './auth.js';
import { createMailQueue, MESSAGES, type MailQueue, type QueueOptions } from './queue.js';
import { countPlacesOnFileStore } from './queue-limits.js';
import { createSmtpServers, type SmtpServers } from './servers.js';
import type { IntegrationInfo } from './servers/validation.js';
import type { MailTransport } from './transport.js';
import { createTransports } from './transports/index.js';
import { GRAPH_CONCURRENCY_PER_MAILBOX } from './transports/graph.js';
import { createMailboxGate } from './transports/mailbox-gate.js';
import { createSlowAnnouncements } from './transports/slow-announcements.js';
import { testConnection, type TestConnectionResult } from './verify.js';
import { AppError } from '../errors.js';

/** Outgoing mail, assembled: servers, pooled transports, Test connection and the queue with its workers. */
export interface MailServices {
  servers: SmtpServers;
  transport: MailTransport;
  queue: MailQueue;
  /** Test connection of a stored (or file-defined) server. */
  test(serverId: string): Promise<TestConnectionResult>;
  /** Subscriptions always; workers only when `workers` is true. */
  start(options: { workers: boolean }): Promise<void>;
  stop(): Promise<void>;
}

export interface MailServicesDeps {
  config: Config;
  store: Store;
  keyring: Keyring;
  log: Logger;
  audit: AuditRecorder;
  metrics?: Metrics;
  /** OAuth 2.0: the token service (grant lookup and the single refresher). */
  oauth?: GrantSource & AccessTokenSource;
  /** Extra trusted CAs for SMTP TLS (tests); production uses NODE_EXTRA_CA_CERTS. */
  tlsCa?: string[];
  /** Queue tuning beyond the environment (tests: short leases and polls). */
  queue?: Partial<QueueOptions>;
  maxConnections?: number;
  /** The egress policy for connections to the servers' hosts. */
  egress?: EgressGuard;
  /** The queue's time (due times, backoff, leases, retention); default the system clock. */
  clock?: Clock;
  /** What mail needs of an OAuth integration (owned by the oauth area): its provider and own Graph base URL. */
  integrationInfo?: (id: string) => Promise<IntegrationInfo | null>;
  /** The egress-checked fetch, for base URLs admins enter on integrations. */
  egressFetch?: typeof fetch;
}

export function createMailServices(deps: MailServicesDeps): MailServices {
  const { config, store, log } = deps;
  const info = deps.integrationInfo;
  const servers = createSmtpServers({
    store,
    keyring: deps.keyring,
    config,
    audit: deps.audit,
    log,
    ...(info ? { integrationProvider: async (id: string) => (await info(id))?.provider ?? null } : {}),
  });
  const clock = deps.clock;
  const now = clock ? () => clock.now() : Date.now;
  // Graph's limit of concurrent requests per mailbox, per instance; a provider's slow-down reaches every instance.
  const gate = createMailboxGate({ limit: GRAPH_CONCURRENCY_PER_MAILBOX, now });
  const slowdowns = createSlowAnnouncements({ store, gate, log });
  const transport = createTransports({
    log,
    graphUrl: config.MAILGATE_GRAPH_URL,
    gmailApiUrl: config.MAILGATE_GMAIL_API_URL,
    ...(info ? { graphBaseUrlOf: async (id: string) => (await info(id))?.graphBaseUrl ?? null } : {}),
    ...(deps.egressFetch ? { egressFetch: deps.egressFetch } : {}),
    now,
    gate,
    onSlow: (key, until) => slowdowns.announce(key, until),
    debug: config.MAILGATE_MAIL_DEBUG,
    ...(deps.tlsCa ? { tlsCa: deps.tlsCa } : {}),
    ...(deps.maxConnections ? { maxConnections: deps.maxConnections } : {}),
    ...(deps.oauth ? { grants: deps.oauth, tokens: deps.oauth } : {}),
    // MAILGATE_SMTP_HOST is the operator's own choice and wins over every admin-entered host: it is trusted.
    ...(deps.egress && !config.MAILGATE_SMTP_HOST ? { egress: deps.egress } : {}),
  });
  const queue = createMailQueue({
    store,
    servers,
    transport,
    log,
    audit: deps.audit,
    fromFormat: config.MAILGATE_FROM_FORMAT,
    limits: { maxMessages: config.MAILGATE_QUEUE_MAX_MESSAGES, maxBytes: config.MAILGATE_QUEUE_MAX_BYTES },
    ...(deps.metrics ? { metrics: deps.metrics } : {}),
    ...(deps.clock ? { clock: deps.clock } : {}),
    options: {
      concurrency: config.MAILGATE_QUEUE_CONCURRENCY,
      maxAttempts: config.MAILGATE_QUEUE_MAX_ATTEMPTS,
      retryBaseMs: config.MAILGATE_QUEUE_RETRY_BASE_MS,
      leaseMs: config.MAILGATE_QUEUE_LEASE_MS,
      ...deps.queue,
    },
  });
  // A changed server gets a fresh pool on every instance (the change is published by the servers service).
  servers.onChange((id) => transport.invalidate(id));
  servers.onCredentialsChanged(async (id) => {
    await queue.resumeServer(id);
  });
  servers.onSendingEnabled(async () => {
    await queue.releaseDisabledHolds();
  });
  let workers = false;
  return {
    servers,
    transport,
    queue,
    async test(serverId) {
      const server = await servers.resolve(serverId);
      if (!server) throw new AppError('not_found', { message: `No SMTP server ${serverId}.` });
      return testConnection(transport, server);
    },
    async start(options) {
      await servers.start();
      await slowdowns.start();
      if (options.workers) {
        workers = true;
        await queue.start();
      } else if (!store.durableIndexes) {
        await countPlacesOnFileStore(store, MESSAGES);
      }
    },
    async stop() {
      if (workers) await queue.stop();
      workers = false;
      await servers.stop();
      await slowdowns.stop();
      await transport.close();
    },
  };
}
