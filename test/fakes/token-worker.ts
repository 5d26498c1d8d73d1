/**
 * A separate mailgate process for multi-process token tests: `node --import tsx test/fakes/token-worker.ts`.
 * Environment: the mailgate variables (REDIS_URL, prefix, keys, provider presets) plus
 *   TOKEN_WORKER_GRANT    grant id
 *   TOKEN_WORKER_CALLERS  concurrent getAccessToken calls when "go" arrives on stdin (default 1); "go <ms>" first sets
 *                         how far ahead of the system clock this process's clock runs (the parent's offset)
 *   TOKEN_WORKER_PAUSE    "after-lock": print LOCKED and wait for "resume" on stdin before the token request;
 *                         "after-response": print RESPONDED and wait for "resume" after the provider answered,
 *                         before the write (the parent freezes the process meanwhile)
 *   TOKEN_WORKER_LOCK_MARGIN_MS   refresh lock lifetime beyond the 1 s request timeout (default 5 s)
 * Prints READY, then one RESULT line of JSON: distinct tokens, errors and the token service's counters.
 */
import { createInterface } from 'node:readline';
import { AuditLog } from '../../src/admin/audit.js';
import { clockFrom } from '../../src/clock.js';
import { loadConfig } from '../../src/config.js';
import { Keyring } from '../../src/crypto/keyring.js';
import { createLogger } from '../../src/log.js';
import { createOAuthServices } from '../../src/tokens/wiring.js';
import { openStore } from '../../src/store/open-store.js';

const grantId = process.env.TOKEN_WORKER_GRANT ?? '';
const callers = Number(process.env.TOKEN_WORKER_CALLERS ?? '1');
const pause = process.env.TOKEN_WORKER_PAUSE ?? '';
let clockOffsetMs = 0;
const lockMarginMs = process.env.TOKEN_WORKER_LOCK_MARGIN_MS
  ? Number(process.env.TOKEN_WORKER_LOCK_MARGIN_MS)
  : undefined;

const config = loadConfig(process.env);
const log = createLogger({ level: 'silent' });
const keyring = new Keyring(config.encryptionKeys ?? []);
const store = await openStore(config);
const audit = new AuditLog(store);

const stdinLines: string[] = [];
const lineWaiters: Array<(line: string) => void> = [];
createInterface({ input: process.stdin }).on('line', (line) => {
  const waiter = lineWaiters.shift();
  if (waiter) waiter(line.trim());
  else stdinLines.push(line.trim());
});
const nextLine = (): Promise<string> =>
  stdinLines.length > 0 ? Promise.resolve(stdinLines.shift()!) : new Promise((r) => lineWaiters.push(r));

/** Says where it stopped and waits for the parent's "resume" (sent once the parent is done with it frozen). */
async function pauseAt(mark: string): Promise<void> {
  process.stdout.write(`${mark}\n`);
  while ((await nextLine()) !== 'resume');
}

const pausingFetch: typeof fetch = async (input, init) => {
  const res = await fetch(input, init);
  if (pause !== 'after-response' || !String(input instanceof Request ? input.url : input).endsWith('/token'))
    return res;
  // The whole answer is read first: the request's timeout, overdue once the process is thawed, must not cut it.
  const body = await res.arrayBuffer();
  await pauseAt('RESPONDED');
  return new Response(body, { status: res.status, statusText: res.statusText, headers: res.headers });
};

const oauth = createOAuthServices({
  config,
  store,
  keyring,
  log,
  audit,
  clock: clockFrom(() => Date.now() + clockOffsetMs),
  // This process refreshes tokens only: it never authorizes or deletes a server.
  servers: { get: (id) => Promise.reject(new Error(`no SMTP server lookup in the token worker (${id})`)) },
  oauthTuning: {
    requestTimeoutSec: 1,
    lockMarginMs,
    fetch: pausingFetch,
    ...(pause === 'after-lock'
      ? {
          afterLock: () => pauseAt('LOCKED'),
        }
      : {}),
  },
});

process.stdout.write('READY\n');
for (;;) {
  const [command, offset] = (await nextLine()).split(' ');
  if (command !== 'go') continue;
  clockOffsetMs = Number(offset ?? '0');
  const settled = await Promise.allSettled(Array.from({ length: callers }, () => oauth.tokens.getAccessToken(grantId)));
  const tokens = new Set<string>();
  const errors: string[] = [];
  for (const s of settled) {
    if (s.status === 'fulfilled') tokens.add(s.value.accessToken);
    else errors.push(String((s.reason as { code?: string }).code ?? s.reason));
  }
  // Token values go to the parent only as a short fingerprint.
  const fingerprints = [...tokens].map((t) => t.slice(-8));
  process.stdout.write(`RESULT ${JSON.stringify({ fingerprints, errors, stats: oauth.tokens.stats })}\n`);
  break;
}
await store.close();
process.exit(0);
