import type { ApiKeyService } from '../admin/api-keys.js';
import type { KeyRateLimits } from '../admin/key-policy.js';
import type { AuditRecorder } from '../admin/types.js';
import type { Config } from '../config.js';
import type { Keyring } from '../crypto/keyring.js';
import type { Logger } from '../log.js';
import type { MailServices } from '../mail/service.js';
import type { StoreWithSessions } from '../store/sessions.js';
import { SubmissionAuthGuard } from './auth-guard.js';
import { submissionCertificate } from './certificate.js';
import { startSubmissionListener, type SubmissionListener } from './listener.js';

/**
 * The submission front as the process runs it: off unless MAILGATE_SUBMISSION_PORT is set; started by the
 * composition root beside the HTTP server and stopped before the queue (a message answered 250 is already stored).
 */
export interface SubmissionFront {
  /** Opens the listener when configured; resolves with its port (null when off). */
  start(): Promise<number | null>;
  /** The port it listens on, null while not listening. */
  readonly port: number | null;
  stop(): Promise<void>;
}

export function createSubmissionFront(deps: {
  config: Config;
  store: StoreWithSessions;
  keyring: Keyring;
  log: Logger;
  apiKeys: ApiKeyService;
  keyRates: KeyRateLimits;
  audit: AuditRecorder;
  mail: Pick<MailServices, 'servers' | 'queue'>;
}): SubmissionFront {
  const { config, log } = deps;
  let listener: SubmissionListener | null = null;
  return {
    get port() {
      return listener?.port ?? null;
    },
    async start() {
      if (config.MAILGATE_SUBMISSION_PORT === undefined) return null;
      if (listener) return listener.port;
      const host = config.MAILGATE_SUBMISSION_HOST ?? config.MAILGATE_HOST;
      const certHost = host === '0.0.0.0' || host === '::' ? 'localhost' : host;
      const tls = await submissionCertificate({
        certFile: config.MAILGATE_SUBMISSION_TLS_CERT_FILE,
        keyFile: config.MAILGATE_SUBMISSION_TLS_KEY_FILE,
        host: certHost,
        store: deps.store,
        keyring: deps.keyring,
        log,
      });
      listener = await startSubmissionListener({
        host,
        port: config.MAILGATE_SUBMISSION_PORT,
        implicitTls: config.MAILGATE_SUBMISSION_IMPLICIT_TLS,
        maxMessageBytes: config.MAILGATE_MAX_MESSAGE_BYTES,
        tls,
        apiKeys: deps.apiKeys,
        keyRates: deps.keyRates,
        guard: new SubmissionAuthGuard(deps.store),
        audit: deps.audit,
        servers: deps.mail.servers,
        queue: deps.mail.queue,
        log,
      });
      log.info(
        {
          host,
          port: listener.port,
          tls: config.MAILGATE_SUBMISSION_IMPLICIT_TLS ? 'implicit' : 'starttls',
          certificate: tls.source,
          fingerprint: tls.fingerprint,
        },
        `SMTP submission front listening on ${host}:${listener.port}; apps log in with an API key as the password`,
      );
      return listener.port;
    },
    async stop() {
      const l = listener;
      listener = null;
      await l?.stop();
    },
  };
}
