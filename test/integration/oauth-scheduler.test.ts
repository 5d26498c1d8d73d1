import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { Keyring } from '../../src/crypto/keyring.js';
import { createLogger } from '../../src/log.js';
import { createServices, type Services } from '../../src/services.js';
import { openStore } from '../../src/store/open-store.js';
import type { StoreWithSessions } from '../../src/store/sessions.js';
import { GRANTS, type GrantRecord } from '../../src/tokens/grants.js';
import { collectOAuthWarnings } from '../../src/tokens/warnings.js';
import { authorizeThroughServices, createOAuthServer, providerEnv, TEST_ACTOR } from '../fakes/oauth-setup.js';
import { startFakeProvider, type FakeProvider } from '../fakes/oidc-provider.js';

/**
 * The scheduler and failure classes, with faults injected through openid-client's fetch hook and the provider.
 * Time is the services' clock, moved by the test; each step runs the scheduler once, as its poll would.
 */

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('token scheduler and failure handling (Google flavour)', () => {
  let provider: FakeProvider;
  let services: Services;
  let store: StoreWithSessions;
  let dataDir: string;
  let ids: Awaited<ReturnType<typeof createOAuthServer>>;
  let networkDown = false;
  let now = Date.now();
  const advance = async (ms: number, stepMs = 100) => {
    for (let passed = 0; passed < ms; passed += stepMs) {
      now += stepMs;
      await services.tokenScheduler.runDue();
    }
  };

  beforeAll(async () => {
    provider = await startFakeProvider({ kind: 'google', accessTokenTtlSec: 3 });
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'mailgate-oauth-sched-'));
    const config = loadConfig({
      NODE_ENV: 'test',
      MAILGATE_DATA_DIR: dataDir,
      MAILGATE_ENCRYPTION_KEYS: `t1:${randomBytes(32).toString('base64')}`,
      MAILGATE_SESSION_SECRETS: randomBytes(32).toString('base64url'),
      ...providerEnv(provider),
    });
    store = await openStore(config);
    const faultyFetch: typeof fetch = async (input, init) => {
      if (networkDown && String(input instanceof Request ? input.url : input).endsWith('/token'))
        throw new TypeError('fetch failed');
      return fetch(input, init);
    };
    services = await createServices({
      config,
      store,
      keyring: new Keyring(config.encryptionKeys ?? []),
      log: createLogger({ level: 'silent' }),
      clock: () => now,
      // The test runs the scheduler itself after moving the clock; its own poll only ticks once, at start.
      oauthTuning: {
        fetch: faultyFetch,
        requestTimeoutSec: 1,
        backoffBaseMs: 200,
        backoffMaxMs: 500,
        schedulerPollMs: 3_600_000,
      },
    });
    ids = await createOAuthServer(services, provider, 2525);
    await authorizeThroughServices(services, ids.serverId);
    await services.start();
  });
  afterAll(async () => {
    await services?.stop();
    await store?.close();
    await provider?.close();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  const grant = async () => (await store.get<GrantRecord>(GRANTS, ids.serverId))!.value;

  it('refreshes ahead of expiry with nobody asking, so the stored token never runs out', async () => {
    const before = provider.counts.refresh;
    for (let passed = 0; passed < 7000; passed += 100) {
      await advance(100);
      const g = await grant();
      expect(g.tokens.expiresAt).toBeGreaterThan(now - 300);
    }
    // 7 s of 3-second tokens: refreshed at ~2.4 s each time.
    expect(provider.counts.refresh - before).toBeGreaterThanOrEqual(2);
    expect(provider.counts.refresh - before).toBeLessThanOrEqual(4);
  });

  it('network failures (customFetch) back off with jitter and never kill the grant; recovery clears the error', async () => {
    networkDown = true;
    await advance(4000);
    const during = await grant();
    expect(during.status).toBe('active');
    expect(during.lastError?.kind).toBe('temporary');
    expect(during.failures).toBeGreaterThanOrEqual(2);
    await expect(services.tokens.getAccessToken(ids.serverId)).rejects.toMatchObject({ code: 'provider_unavailable' });
    networkDown = false;
    await advance(1500);
    const after = await grant();
    expect(after.lastError).toBeNull();
    expect(after.failures).toBe(0);
    expect((await services.tokens.getAccessToken(ids.serverId)).accessToken.length).toBeGreaterThan(10);
  });

  it('invalid_client flags the integration as misconfigured without killing the grant; a fixed secret clears it', async () => {
    await provider.changeClientSecret(ids.clientId, 'secret-changed-at-the-provider');
    await advance(3500);
    const integration = await services.oauthIntegrations.get(ids.integrationId);
    expect(integration.value.misconfigured?.code).toBe('invalid_client');
    expect((await grant()).status).toBe('active');
    const warnings = await collectOAuthWarnings({ store, integrations: services.oauthIntegrations }, now);
    expect(warnings.map((w) => w.kind)).toContain('integration_misconfigured');
    await provider.changeClientSecret(ids.clientId, ids.clientSecret);
    await advance(2000);
    expect((await services.oauthIntegrations.get(ids.integrationId)).value.misconfigured).toBeNull();
    expect((await grant()).lastError).toBeNull();
  });

  it('deleting an SMTP server deletes its grant and revokes it at the provider', async () => {
    const other = await createOAuthServer(services, provider, 2526);
    await authorizeThroughServices(services, other.serverId, 'carol@example.test');
    expect(await store.get(GRANTS, other.serverId)).not.toBeNull();
    const revocations = provider.counts.revocations;
    await services.mail.servers.remove(other.serverId, { actor: TEST_ACTOR });
    for (let i = 0; i < 50 && (await store.get(GRANTS, other.serverId)); i++) await sleep(50);
    expect(await store.get(GRANTS, other.serverId)).toBeNull();
    // Local tokens go first; the provider is told right after, and the audit entry is written once it answered.
    const disconnects = async () =>
      (await services.audit.list({ limit: 20 })).entries.filter(
        (e) => e.action === 'oauth.grant.disconnect' && e.target === `smtp_server:${other.serverId}`,
      );
    await expect.poll(async () => (await disconnects()).length, { timeout: 5000 }).toBeGreaterThan(0);
    expect(provider.counts.revocations - revocations).toBe(1);
    expect(await disconnects()).toHaveLength(1);
    expect(await store.get(GRANTS, ids.serverId)).not.toBeNull();
  });
});
