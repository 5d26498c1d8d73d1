/**
 * npx tsx bench/login-burst.ts [--burst 40]   (embedded file store)
 *
 * A parallel burst of wrong-password logins against a running mailgate, in two shapes: one address against one
 * account, and one address per attempt against one account per attempt (a spray from many addresses). While a
 * burst is in flight, an unrelated API request (POST /api/v1/api-keys: a store write and an audit entry) is
 * timed. Prints, per shape: how many passwords were really checked (audited invalid_credentials), how many were
 * refused before checking (429), the burst's wall time, and the API request's latency.
 */
import { parseArgs } from 'node:util';
import { AUDIT_LOG, type AuditEntry } from '../src/admin/audit.js';
import { startTestApp, type TestApp } from '../test/fakes/app.js';

const { values } = parseArgs({ options: { burst: { type: 'string', default: '40' } } });
const burst = Number(values.burst);

async function loginOnce(app: TestApp, email: string, ip: string): Promise<number> {
  const s = app.anonymousSession();
  const token = await s.refreshCsrf();
  const res = await s.fetch('/login', {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-forwarded-for': ip },
    body: new URLSearchParams({ _csrf: token, email, password: 'wrong-password-burst' }),
  });
  await res.arrayBuffer();
  return res.status;
}

async function checked(app: TestApp, since: number): Promise<number> {
  const rows = await app.store.readLog<AuditEntry>(AUDIT_LOG, { limit: 10_000 });
  return rows.filter((r) => Date.parse(r.entry.at) >= since && r.entry.action === 'auth.login' && r.entry.detail?.reason === 'invalid_credentials').length;
}

async function shape(app: TestApp, name: string, attempt: (i: number) => Promise<number>): Promise<void> {
  const adminKey = await app.apiKey(['admin'], `bench-${name}`);
  const idle = performance.now();
  await fetch(`${app.url}/api/v1/audit?limit=1`, { headers: { authorization: `Bearer ${adminKey}` } });
  const idleMs = performance.now() - idle;
  const since = Date.now() - 1000;
  const started = performance.now();
  const logins = Promise.all(Array.from({ length: burst }, (_, i) => attempt(i)));
  // Let the burst reach the password checks before the unrelated request goes out.
  await new Promise((resolve) => setTimeout(resolve, 150));
  const apiStart = performance.now();
  const api = await fetch(`${app.url}/api/v1/api-keys`, {
    method: 'POST',
    headers: { authorization: `Bearer ${adminKey}`, 'content-type': 'application/json' },
    body: JSON.stringify({ name: `during ${name}`, scopes: ['send'] }),
  });
  await api.arrayBuffer();
  const apiMs = performance.now() - apiStart;
  const statuses = await logins;
  const wallMs = performance.now() - started;
  const counts = statuses.reduce<Record<number, number>>((acc, s) => ({ ...acc, [s]: (acc[s] ?? 0) + 1 }), {});
  console.log(
    `${name}: ${burst} attempts in ${(wallMs / 1000).toFixed(1)} s, statuses ${JSON.stringify(counts)}, passwords checked ${await checked(app, since)}, ` +
      `unrelated API request ${api.status} in ${apiMs.toFixed(0)} ms (idle: ${idleMs.toFixed(0)} ms)`,
  );
}

const app = await startTestApp({ store: 'file', env: { MAILGATE_TRUST_PROXY: '1' } });
try {
  const victim = await app.createUser('sysadmin');
  await shape(app, 'one address, one account', () => loginOnce(app, victim.email, '10.50.0.1'));
  await shape(app, 'one address per attempt, one account per attempt', (i) => loginOnce(app, `nobody-${i}@example.test`, `10.60.${i >> 8}.${i & 255}`));
} finally {
  await app.close();
}
