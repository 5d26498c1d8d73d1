/**
 * Large messages through the JSON API (`npx tsx bench/large-message.ts [--mb 20] [--store file|redis]`): one POST
 * of a message with an attachment of --mb megabytes, then its delivery to the bench sink (another process). The
 * mailgate app runs in this process, so the figures are its own:
 *   - heap: the peak of heapUsed + external (Buffers live outside the V8 heap) above the level before, sampled
 *     every millisecond, from the POST to the 202 and from the 202 to delivery;
 *   - stall: the worst event-loop delay (perf_hooks.monitorEventLoopDelay) in each of the two spans.
 * The request body is built before measuring starts and sent from a child process, so the client's own memory
 * and CPU are not counted.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import type net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { createRequestListener } from '../src/app.js';
import { loadConfig } from '../src/config.js';
import { Keyring } from '../src/crypto/keyring.js';
import { createLogger } from '../src/log.js';
import { createServices } from '../src/services.js';
import { openStore } from '../src/store/open-store.js';

const { values } = parseArgs({
  options: {
    mb: { type: 'string', default: '20' },
    store: { type: 'string', default: 'file' },
    client: { type: 'boolean', default: false },
  },
  allowPositionals: true,
});

// The client half: reads url, key and the body's file from argv, says it is ready, and POSTs on 'go'.
if (values.client) {
  const [url, key, file] = process.argv.slice(-3) as [string, string, string];
  const { readFile } = await import('node:fs/promises');
  const body = await readFile(file);
  process.once('message', async () => {
    const res = await fetch(`${url}/api/v1/messages`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body,
    });
    process.send!(`${res.status} ${await res.text()}`);
    process.exit(0);
  });
  process.send!('ready');
  // The rest of this file is the measuring half: the client stops here until 'go' has been answered.
  await new Promise(() => undefined);
}

const MB = Number(values.mb);
const gc = (globalThis as { gc?: () => void }).gc;

const sink = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(new URL('./sink.ts', import.meta.url))], {
  stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
});
let delivered = 0;
const sinkPort = await new Promise<number>((resolve) => {
  sink.on('message', (m: { port?: number; count?: number }) => {
    if (m.port) resolve(m.port);
    if (m.count !== undefined) delivered = m.count;
  });
});

const dir = await mkdtemp(path.join(os.tmpdir(), 'mailgate-large-'));
const config = loadConfig({
  NODE_ENV: 'production',
  MAILGATE_DATA_DIR: dir,
  MAILGATE_ENCRYPTION_KEYS: `b1:${randomBytes(32).toString('base64')}`,
  MAILGATE_SESSION_SECRETS: randomBytes(32).toString('base64url'),
  MAILGATE_LOG_LEVEL: process.env.MAILGATE_LOG_LEVEL ?? 'warn',
  MAILGATE_WORKERS: 'true',
  MAILGATE_EGRESS_ALLOW: '127.0.0.1',
  // A file of --mb megabytes is about 1.37 times that as sent: the default 25 MiB holds up to about 18 MB.
  MAILGATE_MAX_MESSAGE_BYTES: String(Math.max(25 * 1024 ** 2, Math.ceil(MB * 1024 * 1024 * 1.4) + 65536)),
  ...(values.store === 'redis' && process.env.REDIS_URL
    ? { REDIS_URL: process.env.REDIS_URL, MAILGATE_REDIS_PREFIX: `large:${randomBytes(4).toString('hex')}:` }
    : {}),
});
const store = await openStore(config);
const services = await createServices({
  config,
  store,
  keyring: new Keyring(config.encryptionKeys ?? []),
  log: createLogger({ level: config.MAILGATE_LOG_LEVEL }),
  mail: { queue: { pollMs: 20 } },
});
await services.mail.servers.create(
  {
    name: 'Sink',
    fromAddress: 'bench@example.com',
    host: '127.0.0.1',
    port: sinkPort,
    protocol: 'smtp',
    isDefault: true,
  },
  { actor: { type: 'system', id: 'bench' } },
);
await services.start();
const httpServer = http.createServer(createRequestListener(services));
await new Promise<void>((r) => httpServer.listen(0, '127.0.0.1', r));
const url = `http://127.0.0.1:${(httpServer.address() as net.AddressInfo).port}`;
const key = (await services.apiKeys.create({ name: 'bench', scopes: ['send'], actor: { type: 'system', id: 'b' } }))
  .key;

const bodyFile = path.join(dir, 'body.json');
{
  const { writeFile } = await import('node:fs/promises');
  const content = randomBytes(MB * 1024 * 1024).toString('base64');
  await writeFile(
    bodyFile,
    JSON.stringify({
      to: 'someone@example.net',
      subject: `${MB} MB attachment`,
      text: 'See the attachment.',
      attachments: [{ filename: 'data.bin', contentType: 'application/octet-stream', content }],
    }),
  );
}

const memory = () => {
  const m = process.memoryUsage();
  return m.heapUsed + m.external + m.arrayBuffers;
};

/** Peak memory above `base` and the worst event-loop delay while `work` runs. */
async function watch<T>(work: () => Promise<T>): Promise<{ value: T; peakMb: number; stallMs: number; ms: number }> {
  gc?.();
  const base = memory();
  let peak = base;
  const sampler = setInterval(() => (peak = Math.max(peak, memory())), 1);
  const histogram = monitorEventLoopDelay({ resolution: 1 });
  histogram.enable();
  const t0 = performance.now();
  const value = await work();
  const ms = performance.now() - t0;
  histogram.disable();
  clearInterval(sampler);
  peak = Math.max(peak, memory());
  return { value, peakMb: (peak - base) / 1024 / 1024, stallMs: histogram.max / 1e6, ms };
}

/** A client process with the body loaded; `go()` sends it and resolves with the answer. */
async function readyClient(file: string): Promise<{ go(): Promise<string> }> {
  const client = spawn(
    process.execPath,
    ['--import', 'tsx', fileURLToPath(import.meta.url), '--client', url, key, file],
    { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] },
  );
  await new Promise((resolve) => client.once('message', resolve));
  return {
    go: () =>
      new Promise<string>((resolve) => {
        client.once('message', (m) => resolve(m as string));
        client.send('go');
      }),
  };
}

// Warm-up: a small message first, so first-use compilation is not counted as a stall of large input.
const smallFile = path.join(dir, 'small.json');
await (
  await import('node:fs/promises')
).writeFile(
  smallFile,
  JSON.stringify({
    to: 'a@example.net',
    subject: 'warm',
    text: 'x',
    attachments: [{ filename: 'a', content: 'QUJD' }],
  }),
);
const warm = await (await readyClient(smallFile)).go();
if (!warm.startsWith('202')) throw new Error(`warm-up refused: ${warm}`);
while (delivered < 1) await new Promise((r) => setTimeout(r, 5));

const client = await readyClient(bodyFile);
const post = await watch(() => client.go());
if (!post.value.startsWith('202')) throw new Error(`refused: ${post.value}`);
const delivery = await watch(async () => {
  while (delivered < 2) await new Promise((r) => setTimeout(r, 1));
});

const bodyMb = (await import('node:fs')).statSync(bodyFile).size / 1024 / 1024;
console.log(`store ${store.kind}, attachment ${MB} MB (request body ${bodyMb.toFixed(1)} MB), Node ${process.version}`);
console.log(`  answer: ${post.value.slice(0, 80)}`);
console.log(
  `  POST → 202: ${post.ms.toFixed(0)} ms, worst event-loop stall ${post.stallMs.toFixed(0)} ms, peak memory +${post.peakMb.toFixed(0)} MB`,
);
console.log(
  `  202 → delivered: ${delivery.ms.toFixed(0)} ms, worst event-loop stall ${delivery.stallMs.toFixed(0)} ms, peak memory +${delivery.peakMb.toFixed(0)} MB`,
);

httpServer.close();
await services.stop();
await store.close();
sink.disconnect();
await rm(dir, { recursive: true, force: true });
