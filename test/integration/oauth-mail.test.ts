import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { Keyring } from '../../src/crypto/keyring.js';
import { createLogger } from '../../src/log.js';
import { createServices, type Services } from '../../src/services.js';
import { openStore } from '../../src/store/open-store.js';
import type { Store } from '../../src/store/store.js';
import { GRANTS, openToken, type GrantRecord } from '../../src/tokens/grants.js';
import { disconnectGrant } from '../../src/tokens/revoke.js';
import { startOAuthSmtp, type OAuthSmtp } from '../fakes/oauth-flow.js';
import { authorizeThroughServices, createOAuthServer, providerEnv } from '../fakes/oauth-setup.js';
import { startFakeProvider, type FakeProvider } from '../fakes/oidc-provider.js';

/**
 * Mail through XOAUTH2 end to end: queue → transport → provisionCallback → token service → local provider,
 * and an SMTP server that validates every token by introspection. Faults come from the provider itself
 * (503, hanging token endpoint, a disabled account whose refresh tokens yield invalid_grant).
 */

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Instance {
  services: Services;
  store: Store;
  close(): Promise<void>;
}

const logLines: string[] = [];
const logSink = new Writable({
  write(chunk: Buffer, _enc, cb) {
    logLines.push(...chunk.toString().split('\n').filter(Boolean));
    cb();
  },
});

/** The instances' clock runs this far ahead of the system clock; moving it ages tokens without waiting. */
let clockOffsetMs = 0;

async function startInstance(env: Record<string, string>): Promise<Instance> {
  const config = loadConfig(env);
  const log = createLogger({ level: 'debug', destination: logSink });
  const keyring = new Keyring(config.encryptionKeys ?? []);
  const store = await openStore(config);
  const services = await createServices({
    config,
    store,
    keyring,
    log,
    clock: () => Date.now() + clockOffsetMs,
    oauthTuning: { requestTimeoutSec: 1, backoffBaseMs: 300, backoffMaxMs: 1500, schedulerPollMs: 200 },
    mail: { queue: { pollMs: 50, maxRetryDelayMs: 1000 } },
  });
  await services.start();
  return {
    services,
    store,
    async close() {
      await services.stop();
      await store.close();
    },
  };
}

async function waitUntil(what: string, check: () => Promise<boolean>, timeoutMs = 40_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

const message = (serverId: string, n: number) => ({
  serverId,
  to: ['bob@example.test'],
  subject: `hello ${n}`,
  text: `message ${n}`,
});

describe.each(['microsoft', 'google'] as const)('XOAUTH2 mail with a local %s', (kind) => {
  let provider: FakeProvider;
  let smtp: OAuthSmtp;
  let dataDir: string;
  let env: Record<string, string>;
  let instance: Instance | undefined;
  let serverId: string;
  const canaries: string[] = [];

  beforeAll(async () => {
    provider = await startFakeProvider({ kind, accessTokenTtlSec: 4 });
    smtp = await startOAuthSmtp(provider);
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'mailgate-oauth-mail-'));
    env = {
      NODE_ENV: 'test',
      MAILGATE_DATA_DIR: dataDir,
      MAILGATE_ENCRYPTION_KEYS: `t1:${randomBytes(32).toString('base64')}`,
      MAILGATE_SESSION_SECRETS: randomBytes(32).toString('base64url'),
      MAILGATE_QUEUE_RETRY_BASE_MS: '100',
      MAILGATE_QUEUE_MAX_ATTEMPTS: '100',
      ...providerEnv(provider),
    };
    instance = await startInstance(env);
    const created = await createOAuthServer(instance.services, provider, smtp.port);
    serverId = created.serverId;
    canaries.push(created.clientSecret);
    const { code } = await authorizeThroughServices(instance.services, serverId);
    canaries.push(code);
  });
  afterEach(() => provider.setTokenFault('none'));
  afterAll(async () => {
    await instance?.close();
    await smtp?.close();
    await provider?.close();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  async function remember() {
    const g = await instance!.store.get<GrantRecord>(GRANTS, serverId);
    if (!g) return;
    canaries.push(openToken(instance!.services.keyring, serverId, 'accessToken', g.value.tokens.accessToken));
    if (g.value.tokens.refreshToken)
      canaries.push(openToken(instance!.services.keyring, serverId, 'refreshToken', g.value.tokens.refreshToken));
  }

  /** Moves the clock past the stored access token's expiry, then drops pooled SMTP sessions so sends need a token again. */
  async function untilTokenExpired() {
    const doc = await instance!.store.get<GrantRecord>(GRANTS, serverId);
    clockOffsetMs += Math.max(0, doc!.value.tokens.expiresAt - (Date.now() + clockOffsetMs) + 100);
    smtp.dropConnections();
  }

  /**
   * Moves the clock past any refresh, backoff or retry still pending, then waits for proof that the instance
   * acted at that later time: a message queued now (`n`, added to `ids`) has been held, and a scheduler pass
   * run once the background one has finished found nothing due.
   */
  async function afterTimeMovesOn(ids: string[], n: number) {
    clockOffsetMs += 60_000;
    const s = instance!.services;
    ids.push((await s.mail.queue.enqueue(message(serverId, n))).id);
    await waitUntil('held', async () => (await statusOf(ids.at(-1)!)) === 'held');
    await s.tokenScheduler.stop();
    expect(await s.tokenScheduler.runDue()).toBe(0);
    await s.tokenScheduler.start();
  }

  /**
   * Waits until every message in `ids` has been tried again and deferred for want of a token, and `requests`
   * more token requests reached the provider. (Such tries keep `attempts`; `updatedAt` marks each one.)
   */
  async function untilRetriedThroughFault(ids: string[], requests: number) {
    const queue = instance!.services.mail.queue;
    const triedAt = async (id: string) => {
      const m = await queue.get(id);
      return m.lastError?.code === 'oauth_token_unavailable' ? Date.parse(m.updatedAt) : 0;
    };
    const triedAtStart = await Promise.all(ids.map(triedAt));
    const requestsAtStart = provider.edgeTokenRequests;
    await waitUntil('retries through the fault', async () => {
      if (provider.edgeTokenRequests < requestsAtStart + requests) return false;
      const tried = await Promise.all(ids.map(triedAt));
      return tried.every((t, i) => t > triedAtStart[i]!);
    });
  }

  async function statusOf(id: string) {
    return (await instance!.services.mail.queue.get(id)).status;
  }

  it('sends through XOAUTH2; the SMTP server accepted the token by introspection', async () => {
    const { id } = await instance!.services.mail.queue.enqueue(message(serverId, 1));
    await waitUntil('delivery', async () => (await statusOf(id)) === 'sent');
    expect(smtp.messages.at(-1)?.user).toBe('alice@example.test');
    expect(smtp.authAttempts.some((a) => a.accepted)).toBe(true);
    await remember();
  });

  it('Test connection authenticates with XOAUTH2 and masks the token', async () => {
    const result = await instance!.services.mail.test(serverId);
    expect(result.ok).toBe(true);
    const transcript = result.transcript.join('\n');
    expect(transcript).toContain('AUTH XOAUTH2');
    const g = await instance!.store.get<GrantRecord>(GRANTS, serverId);
    expect(transcript).not.toContain(
      openToken(instance!.services.keyring, serverId, 'accessToken', g!.value.tokens.accessToken),
    );
  });

  it('an integration with an authorized mailbox cannot be deleted', async () => {
    const grant = await instance!.store.get<GrantRecord>(GRANTS, serverId);
    await expect(
      instance!.services.oauthIntegrations.delete(grant!.value.integrationId, { type: 'system', id: 't' }),
    ).rejects.toMatchObject({ code: 'conflict' });
  });

  it('restart after several rotations continues without re-authorization', async () => {
    for (let i = 0; i < 3; i++) {
      await instance!.services.tokens.getAccessToken(serverId, { force: true });
      await remember();
    }
    await instance!.close();
    smtp.dropConnections();
    instance = await startInstance(env);
    const before = smtp.messages.length;
    clockOffsetMs += 4200; // past the access token's life: the restarted instance must refresh with the stored (rotated) refresh token
    const { id } = await instance.services.mail.queue.enqueue(message(serverId, 2));
    await waitUntil('delivery after restart', async () => (await statusOf(id)) === 'sent');
    expect(smtp.messages.length).toBe(before + 1);
    expect(provider.counts.refreshErrors).toBe(0);
    await remember();
  });

  it('provider down (503, then hanging) for 3 token lifetimes: no message lost, all delivered after recovery, grant stays active', async () => {
    const before = smtp.messages.length;
    provider.setTokenFault('503');
    await untilTokenExpired();
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push((await instance!.services.mail.queue.enqueue(message(serverId, 10 + i))).id);
    // Each phase of the outage lasts until every message has met the fault again and the token endpoint has
    // refused several refreshes; the instances' clock then moves on by 1.5 token lifetimes (3 over both phases).
    await untilRetriedThroughFault(ids, 3);
    clockOffsetMs += 6000;
    provider.setTokenFault('hang');
    for (let i = 0; i < 5; i++) ids.push((await instance!.services.mail.queue.enqueue(message(serverId, 20 + i))).id);
    await untilRetriedThroughFault(ids, 2);
    clockOffsetMs += 6000;
    const during = await Promise.all(ids.map(statusOf));
    expect(during.filter((s) => s === 'sent' || s === 'failed')).toEqual([]);
    const grantDuring = await instance!.store.get<GrantRecord>(GRANTS, serverId);
    expect(grantDuring?.value.status).toBe('active');
    expect(grantDuring?.value.lastError?.kind).toBe('temporary');
    provider.setTokenFault('none');
    const recovered = Date.now();
    await waitUntil(
      'delivery after recovery',
      async () => (await Promise.all(ids.map(statusOf))).every((s) => s === 'sent'),
      60_000,
    );
    console.info(
      `[figures] ${kind}: provider down 3 token lifetimes (12 s on the clock) → 10/10 messages delivered ${((Date.now() - recovered) / 1000).toFixed(1)} s after recovery, 0 failed`,
    );
    expect(smtp.messages.length).toBe(before + 10);
    expect((await instance!.store.get<GrantRecord>(GRANTS, serverId))?.value.lastError).toBeNull();
    await remember();
  }, 120_000);

  it('invalid_grant → needs_reauth once, mail held, one alert; Re-authorize delivers the held mail', async () => {
    const before = smtp.messages.length;
    const alertsBefore = logLines.filter((l) => l.includes('needs re-authorization')).length;
    provider.disableAccount('alice@example.test');
    await untilTokenExpired();
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push((await instance!.services.mail.queue.enqueue(message(serverId, 30 + i))).id);
    await waitUntil('held', async () => (await Promise.all(ids.map(statusOf))).every((s) => s === 'held'));
    const grant = await instance!.store.get<GrantRecord>(GRANTS, serverId);
    expect(grant?.value.status).toBe('needs_reauth');
    expect(grant?.value.lastError?.code).toBe('invalid_grant');
    const tokenRequests = provider.edgeTokenRequests;
    await afterTimeMovesOn(ids, 33);
    // Retries stopped: one alert in the log, one audit event, however many messages and scheduler ticks.
    expect(logLines.filter((l) => l.includes('needs re-authorization')).length - alertsBefore).toBe(1);
    const audit = await instance!.services.audit.list({ limit: 200 });
    expect(audit.entries.filter((e) => e.action === 'oauth.grant.needs_reauth').length).toBe(1);
    const ready = await instance!.services.readinessChecks[0]!.check();
    expect(JSON.stringify(ready.detail)).toContain('needs_reauth');
    expect(smtp.messages.length).toBe(before);
    expect(provider.edgeTokenRequests).toBe(tokenRequests);

    provider.enableAccount('alice@example.test');
    const { code } = await authorizeThroughServices(instance!.services, serverId);
    canaries.push(code);
    await waitUntil('held mail delivered', async () =>
      (await Promise.all(ids.map(statusOf))).every((s) => s === 'sent'),
    );
    expect(smtp.messages.length).toBe(before + ids.length);
    await remember();
  }, 90_000);

  it('after Disconnect, mail for the server is held (not failed, not sent) until someone authorizes again', async () => {
    const before = smtp.messages.length;
    const s = instance!.services;
    await disconnectGrant(
      { store: s.store, keyring: s.keyring, log: s.log, audit: s.audit, integrations: s.oauthIntegrations },
      serverId,
      { type: 'system', id: 'test' },
    );
    smtp.dropConnections();
    const ids: string[] = [];
    for (let i = 0; i < 2; i++) ids.push((await s.mail.queue.enqueue(message(serverId, 40 + i))).id);
    await waitUntil('held', async () => (await Promise.all(ids.map(statusOf))).every((st) => st === 'held'));
    await afterTimeMovesOn(ids, 42);
    expect((await Promise.all(ids.map(statusOf))).every((st) => st === 'held')).toBe(true);
    expect(smtp.messages.length).toBe(before);
  });

  it('canary: no access token, refresh token, client secret or authorization code in any log line or data file', async () => {
    expect(canaries.length).toBeGreaterThan(8);
    expect(logLines.length).toBeGreaterThan(5);
    const logText = logLines.join('\n');
    for (const c of canaries) expect(logText.includes(c), `canary ${c.slice(0, 5)}… in the log`).toBe(false);
    const files = await listFiles(dataDir);
    for (const f of files) {
      const content = await readFile(f, 'utf8');
      for (const c of canaries) expect(content.includes(c), `canary ${c.slice(0, 5)}… in ${f}`).toBe(false);
    }
  });
});

async function listFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await listFiles(full)));
    else out.push(full);
  }
  return out;
}
