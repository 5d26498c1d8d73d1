/**
 * A mailgate mail worker in its own process, for the kill -9 tests: opens the file store in DATA_DIR (or Redis at
 * REDIS_URL with REDIS_PREFIX), optionally creates a server and queues ENQUEUE messages, then delivers until
 * SIGTERM (graceful stop) or SIGKILL. LEASE_MS overrides the lease (default: the product's), PER_SERVER the
 * per-server cap (default 8, the whole width). Reports progress as JSON lines on stdout.
 */
import { messageInput } from '../../src/mail/compose.js';
import { startMailHarness } from './mail-services.js';

const env = process.env;
const h = await startMailHarness({
  ...(env.REDIS_URL ? { redis: { url: env.REDIS_URL, prefix: env.REDIS_PREFIX! } } : { dataDir: env.DATA_DIR! }),
  encryptionKey: env.ENCRYPTION_KEY!,
  // One mailbox only: the per-mailbox fairness cap is lifted so crash recovery runs at the instance's full width.
  queue: {
    pollMs: 20,
    retryBaseMs: 50,
    maxAttempts: 10,
    perServerConcurrency: Number(env.PER_SERVER ?? 8),
    ...(env.LEASE_MS ? { leaseMs: Number(env.LEASE_MS) } : {}),
  },
});
const count = Number(env.ENQUEUE ?? 0);
if (count > 0) {
  const serverId = await h.addServer({ host: '127.0.0.1', port: Number(env.SMTP_PORT) });
  for (let i = 0; i < count; i++)
    await h.mail.queue.enqueue({
      ...messageInput.parse({ to: `r${i}@example.net`, subject: `m${i}`, text: 'x' }),
      serverId,
    });
}
process.stdout.write(`${JSON.stringify({ ready: true, enqueued: count })}\n`);
process.on('SIGTERM', () => {
  void h.close().then(() => process.exit(0));
});
