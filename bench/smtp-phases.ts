import type { Bench } from './context.js';
import { buildApp } from './instances.js';
import type { RunPhase } from './measure.js';
import { startSmtpClient } from './smtp-front.js';

/** A build to run: its name in the labels ('' for this tree alone) and the node arguments of its instances. */
export type Build = [string, string[]];

/**
 * The same SMTP client straight to the sink (s0), then through the submission front (s) on the file store
 * (MAILGATE_FSYNC=always); then (s0) again and (s) on Redis, when a redis-server is at hand. Each (s) is compared
 * with the (s0) just before it: on a shared machine the load changes within a minute, and (s0) taken once per
 * round made the ratio swing by a factor of two. With several `builds` (--against), each store runs every build
 * in turn after its (s0), under the same load.
 */
export async function smtpPhases(bench: Bench, run: RunPhase, builds: Build[] = [['', bench.entry]]): Promise<void> {
  const { n: N, connections } = bench.options;
  const { sink } = bench;
  const redis = await bench.redis.start();
  for (const redisUrl of [null, ...(redis ? [redis.url] : [])]) {
    const direct = await startSmtpClient({ port: sink.port, n: N, connections });
    await run(`(s0) SMTP client to the sink directly${redisUrl ? ', before Redis' : ''}`, async () => ({
      clientCpuMs: (await direct.go()).cpuMs,
    }));
    for (const [name, entry] of builds) {
      const app = await buildApp(bench, redisUrl, 'always', { env: { MAILGATE_SUBMISSION_PORT: '0' }, entry });
      await app.start();
      const port = (await app.first({ cmd: 'submission-start' })) as number;
      const client = await startSmtpClient({ port, n: N, connections, password: app.key });
      await run(
        `(s) SMTP front, ${redisUrl ? 'Redis' : 'file store'}${name ? `, ${name}` : ''}`,
        async () => {
          const before = sink.received;
          const r = await client.go();
          console.log(
            `    the client had its last 250 after ${(r.elapsedMs / 1000).toFixed(1)} s (${((N / r.elapsedMs) * 1000).toFixed(0)} msgs/s accepted), ${sink.received - before} delivered by then`,
          );
          return { clientCpuMs: r.cpuMs, note: 'STARTTLS + AUTH, durable queue, workers' };
        },
        app.pids,
      );
      await app.close();
    }
  }
  await redis?.stop();
}
