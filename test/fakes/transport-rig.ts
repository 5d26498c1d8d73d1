import { afterAll, afterEach } from 'vitest';
import { createLogger } from '../../src/log.js';
import { createMailTransport, type MailTransport, type TransportDeps } from '../../src/mail/transport.js';
import { startScriptedSmtp, type ScriptedSmtp, type ScriptedSmtpOptions } from './scripted-smtp.js';
import { startTestSmtp, type TestSmtp, type TestSmtpOptions } from './smtp-server.js';

/**
 * What the mail transport tests share: SMTP fakes closed after the file's last test, transports closed after each
 * test. Call it at a test file's top level, where it registers those hooks.
 */
export function useTransportRig() {
  const log = createLogger({ level: 'silent' });
  const servers: { close(): Promise<void> }[] = [];
  const transports: MailTransport[] = [];
  afterEach(async () => {
    for (const t of transports.splice(0)) await t.close();
  });
  afterAll(async () => {
    for (const s of servers.splice(0)) await s.close();
  });
  function keep<T extends { close(): Promise<void> }>(server: T): T {
    servers.push(server);
    return server;
  }
  return {
    log,
    /** Closes `server` after the file's last test. */
    keep,
    smtp: async (options: TestSmtpOptions = {}): Promise<TestSmtp> => keep(await startTestSmtp(options)),
    scripted: async (options: ScriptedSmtpOptions = {}): Promise<ScriptedSmtp> =>
      keep(await startScriptedSmtp(options)),
    /** A transport closed after the test; `nodemailer: true` takes the protocol-logging path, which is nodemailer's. */
    transport: (deps: Partial<TransportDeps> & { nodemailer?: boolean } = {}): MailTransport => {
      const { nodemailer, ...rest } = deps;
      const t = createMailTransport({ log, ...(nodemailer ? { debug: true } : {}), ...rest });
      transports.push(t);
      return t;
    },
  };
}
