/**
 * npx tsx bench/login-burst.ts [--burst 40]   (embedded file store)
 *
 * A parallel burst of wrong-password logins against a running mailgate, in two shapes: one address against one
 * account, and one address per attempt against one account per attempt (a spray from many addresses). While a
 * burst is in flight, unrelated API requests (POST /api/v1/api-keys: a store write and an audit entry) are
 * timed one after another. Prints, per shape: how many passwords were really checked (audited
 * invalid_credentials), how many were refused before checking (429), the burst's wall time, and the API latency.
 */
import { parseArgs } from 'node:util';
import { AUDIT_LOG, type AuditEntry } from '../src/admin/audit.js';
import { startTestApp, type TestApp } from '../test/fakes/app.js';

const { values } = parseArgs({ options: { burst: { type: 'string', default: '40' } } });
const burst = Number(values.burst);

type Attempt = () => Promise<number>;

/** Prepares one login post (its page view and form token happen now, outside the timed burst). */
async function prepareLogin(app: TestApp, email: string, ip: string): Promise<Attempt> {
  const s = app.anonymousSession();
  const token = await s.refreshCsrf();
  return async () => {
    const res = await s.fetch('/login', {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-forwarded-for': ip },
      body: new URLSearchParams({ _csrf: token, email, password: 'wrong-password-burst' }),
    });
    await res.arrayBuffer();
    return res.status;
  };
}

async function checked(app: TestApp, since: number): Promise<number> {
  const rows = await app.store.readLog<AuditEntry>(AUDIT_LOG, { limit: 10_000 });
  return rows.filter(
    (r) =>
      Date.parse(r.entry.at) >= since &&
      r.entry.action === 'auth.login' &&
      r.entry.detail?.reason === 'invalid_credentials',
  ).length;
}

async function shape(app: TestApp, name: string, attempts: Attempt[]): Promise<void> {
  const adminKey = await app.apiKey(['admin'], `bench-${name}`);
  const apiRequest = async () => {
    const start = performance.now();
    const res = await fetch(`${app.url}/api/v1/api-keys`, {
      method: 'POST',
      headers: { authorization: `Bearer ${adminKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({ name: `during ${name}`, scopes: ['send'] }),
    });
    await res.arrayBuffer();
    if (res.status !== 201) throw new Error(`API request answered ${res.status}`);
    return performance.now() - start;
  };
  const idleMs = await apiRequest();
  const since = Date.now() - 1000;
  const started = performance.now();
  let done = false;
  const logins = Promise.all(attempts.map((a) => a())).finally(() => (done = true));
  // Unrelated API requests one after another, every 250 ms, for as long as the burst lasts.
  const latencies: number[] = [];
  while (!done) {
    await new Promise((resolve) => setTimeout(resolve, 250));
    if (!done) latencies.push(await apiRequest());
  }
  const statuses = await logins;
  const wallMs = performance.now() - started;
  const counts = statuses.reduce<Record<number, number>>((acc, st) => ({ ...acc, [st]: (acc[st] ?? 0) + 1 }), {});
  latencies.sort((x, y) => x - y);
  const median = latencies[Math.floor(latencies.length / 2)] ?? 0;
  const max = latencies.at(-1) ?? 0;
  console.log(
    `${name}: ${attempts.length} attempts in ${(wallMs / 1000).toFixed(1)} s, statuses ${JSON.stringify(counts)}, passwords checked ${await checked(app, since)}; ` +
      `${latencies.length} unrelated API requests during the burst: median ${median.toFixed(0)} ms, max ${max.toFixed(0)} ms (idle: ${idleMs.toFixed(0)} ms)`,
  );
}

const app = await startTestApp({ store: 'file', env: { MAILGATE_TRUST_PROXY: '1' } });
try {
  const victim = await app.createUser('sysadmin');
  const indexes = Array.from({ length: burst }, (_, i) => i);
  await shape(
    app,
    'one address, one account',
    await Promise.all(indexes.map(() => prepareLogin(app, victim.email, '10.50.0.1'))),
  );
  await shape(
    app,
    'one address per attempt, one account per attempt',
    await Promise.all(indexes.map((i) => prepareLogin(app, `nobody-${i}@example.test`, `10.60.${i >> 8}.${i & 255}`))),
  );
} finally {
  await app.close();
}
