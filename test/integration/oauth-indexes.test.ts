import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { Keyring } from '../../src/crypto/keyring.js';
import { createLogger } from '../../src/log.js';
import { createServices, type Services } from '../../src/services.js';
import { openStore } from '../../src/store/open-store.js';
import type { StoreWithSessions } from '../../src/store/sessions.js';
import type { Store } from '../../src/store/store.js';
import { grantCounts } from '../../src/tokens/grant-index.js';
import { countGrantsOfIntegration, GRANTS } from '../../src/tokens/grants.js';
import { collectOAuthWarnings } from '../../src/tokens/warnings.js';
import { authorizeThroughServices, createOAuthServer, providerEnv, TEST_ACTOR } from '../fakes/oauth-setup.js';
import { startFakeProvider, type FakeProvider } from '../fakes/oidc-provider.js';
import { redisUrlForTests, uniquePrefix } from '../fakes/redis.js';

/**
 * Warnings, readiness, gauges and lookups by integration read indexes and counters kept with every grant write,
 * never every grant: a store that refuses to list grants still answers them, and they follow each transition
 * (authorized, needs_reauth, re-authorized, disconnected), also after a restart.
 */

const redisUrl = redisUrlForTests();
const backends = [{ name: 'embedded', redis: false }, ...(redisUrl ? [{ name: 'redis', redis: true }] : [])];

/** The store, except that listing grants fails: what must not happen on these paths. */
function refusingGrantScans(store: Store): Store {
  return new Proxy(store, {
    get(target, prop, receiver) {
      if (prop === 'list')
        return (collection: string, options?: { prefix?: string }) => {
          if (collection === GRANTS) throw new Error('listed every grant');
          return target.list(collection, options);
        };
      const value: unknown = Reflect.get(target, prop, receiver);
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
}

describe.each(backends)('grant indexes ($name)', ({ redis }) => {
  const closers: Array<() => Promise<void>> = [];
  afterAll(async () => {
    for (const c of closers.reverse()) await c();
  });

  it('follow each transition and survive a restart; warnings and counts never list the grants', async () => {
    const provider: FakeProvider = await startFakeProvider({ kind: 'google', accessTokenTtlSec: 3600 });
    closers.push(() => provider.close());
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'mailgate-oauth-idx-'));
    closers.push(() => rm(dataDir, { recursive: true, force: true }));
    const config = loadConfig({
      NODE_ENV: 'test',
      MAILGATE_DATA_DIR: dataDir,
      MAILGATE_ENCRYPTION_KEYS: `t1:${randomBytes(32).toString('base64')}`,
      MAILGATE_SESSION_SECRETS: randomBytes(32).toString('base64url'),
      MAILGATE_FSYNC: 'off',
      ...(redis ? { REDIS_URL: redisUrl!, MAILGATE_REDIS_PREFIX: uniquePrefix('oidx') } : {}),
      ...providerEnv(provider),
    });
    const open = async (): Promise<{ services: Services; store: StoreWithSessions }> => {
      const store = await openStore(config);
      const services = await createServices({
        config,
        store,
        keyring: new Keyring(config.encryptionKeys ?? []),
        log: createLogger({ level: 'silent' }),
        oauthTuning: { schedulerPollMs: 3_600_000, requestTimeoutSec: 2 },
      });
      await services.start();
      return { services, store };
    };
    let { services, store } = await open();
    const a = await createOAuthServer(services, provider, 2525);
    await authorizeThroughServices(services, a.serverId, 'alice@example.test');
    const b = await services.mail.servers.create(
      {
        name: 'second',
        fromAddress: 'bob@example.test',
        host: '127.0.0.1',
        port: 2526,
        authMethod: 'oauth2',
        oauthIntegrationId: a.integrationId,
      },
      { actor: TEST_ACTOR },
    );
    await authorizeThroughServices(services, b.id, 'bob@example.test');

    const guarded = refusingGrantScans(store);
    expect(await countGrantsOfIntegration(guarded, a.integrationId)).toBe(2);
    expect(await grantCounts(guarded)).toEqual({ active: 2, needs_reauth: 0, refresh_failing: 0 });

    provider.disableAccount('bob@example.test');
    await services.tokens.getAccessToken(b.id, { force: true }).catch(() => null);
    expect(await grantCounts(guarded)).toEqual({ active: 1, needs_reauth: 1, refresh_failing: 0 });
    const warnings = await collectOAuthWarnings({ store: guarded, integrations: services.oauthIntegrations });
    expect(warnings.filter((w) => w.kind === 'needs_reauth').map((w) => w.target)).toEqual([`smtp_server:${b.id}`]);
    const ready = await services.readinessChecks[0]!.check();
    expect(ready.detail).toEqual({ warnings: [{ kind: 'needs_reauth', count: 1 }] });

    // A restart rebuilds (embedded) or keeps (Redis) the same figures.
    await services.stop();
    await store.close();
    ({ services, store } = await open());
    expect(await grantCounts(refusingGrantScans(store))).toEqual({ active: 1, needs_reauth: 1, refresh_failing: 0 });

    provider.enableAccount('bob@example.test');
    await authorizeThroughServices(services, b.id, 'bob@example.test');
    const again = refusingGrantScans(store);
    expect(await grantCounts(again)).toEqual({ active: 2, needs_reauth: 0, refresh_failing: 0 });
    expect(await collectOAuthWarnings({ store: again, integrations: services.oauthIntegrations })).toEqual([]);

    await services.oauthAdmin.disconnect(a.serverId, TEST_ACTOR);
    expect(await countGrantsOfIntegration(again, a.integrationId)).toBe(1);
    expect(await grantCounts(again)).toEqual({ active: 1, needs_reauth: 0, refresh_failing: 0 });
    closers.push(async () => {
      await services.stop();
      await store.close();
    });
  }, 60_000);
});
