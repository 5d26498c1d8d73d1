import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../fakes/app.js';
import { afterInstancesLookAgain, notifyEventsOfType } from '../fakes/look-again.js';
import { startOAuthSmtp, type OAuthSmtp } from '../fakes/oauth-flow.js';
import { authorizeThroughServices, createOAuthServer, providerEnv, TEST_ACTOR } from '../fakes/oauth-setup.js';
import { startFakeProvider, type FakeProvider } from '../fakes/oidc-provider.js';
import { redisUrlForTests } from '../fakes/redis.js';
import { startWebhookReceiver, waitFor, type WebhookReceiver } from '../fakes/webhook-receiver.js';

/**
 * Two instances on one Redis, both running workers and the token scheduler, both seeing every transition: each
 * transition is reported exactly once (one grant.needs_reauth, one grant.recovered), and a transition raced by
 * both instances at once still yields one event.
 */

let offsetMs = 0;
let provider: FakeProvider;
let oauthSmtp: OAuthSmtp;
let receiver: WebhookReceiver;
let a: TestApp;
let b: TestApp;
let serverId: string;
const secret = randomBytes(32).toString('hex');
const seams = {
  oauthTuning: { requestTimeoutSec: 2, backoffBaseMs: 100, backoffMaxMs: 500, schedulerPollMs: 30 },
  notifyTuning: { pollMs: 30, webhookTimeoutMs: 1000, backoffBaseMs: 50, backoffCapMs: 200, watchMs: 100 },
};

describe.skipIf(!redisUrlForTests())('notifications across two instances on Redis', () => {
  beforeAll(async () => {
    provider = await startFakeProvider({ kind: 'microsoft', accessTokenTtlSec: 3600 });
    oauthSmtp = await startOAuthSmtp(provider);
    receiver = await startWebhookReceiver(secret);
    const clock = () => Date.now() + offsetMs;
    a = await startTestApp({ store: 'redis', workers: true, clock, env: providerEnv(provider), seams });
    b = await startTestApp({ shareWith: a, workers: true, clock, seams });
    ({ serverId } = await createOAuthServer(a.services, provider, oauthSmtp.port));
    await authorizeThroughServices(a.services, serverId);
    await a.services.notify.channels.create(
      { name: 'hook', type: 'webhook', url: receiver.url, secret, events: undefined },
      TEST_ACTOR,
    );
  }, 60_000);

  afterAll(async () => {
    await b?.close();
    await a?.close();
    await receiver?.close();
    await oauthSmtp?.close();
    await provider?.close();
  });

  it('a revoked grant refreshed by both instances at once: one grant.needs_reauth', async () => {
    provider.disableAccount('alice@example.test');
    offsetMs += 3600_000;
    // Both instances ask for a token as the schedulers claim the refresh: every path races to the same transition.
    await Promise.allSettled([
      a.services.tokens.getAccessToken(serverId, { force: true }),
      b.services.tokens.getAccessToken(serverId, { force: true }),
    ]);
    await waitFor('grant.needs_reauth', () => receiver.ofType('grant.needs_reauth').length > 0);
    // The periodic checks and schedulers of both instances see the grant too: still one event.
    await afterInstancesLookAgain([a, b]);
    expect(await notifyEventsOfType(a.store, 'grant.needs_reauth')).toBe(1);
    expect(receiver.ofType('grant.needs_reauth')).toHaveLength(1);
  });

  it('re-authorization seen by both instances: one grant.recovered', async () => {
    provider.enableAccount('alice@example.test');
    await authorizeThroughServices(b.services, serverId);
    await waitFor('grant.recovered', () => receiver.ofType('grant.recovered').length > 0);
    await afterInstancesLookAgain([a, b]);
    expect(await notifyEventsOfType(a.store, 'grant.recovered')).toBe(1);
    expect(receiver.ofType('grant.recovered')).toHaveLength(1);
  });

  it('the same transition raced by both instances many times: one event each', async () => {
    const ref = { serverId: 'srv_race', mailbox: 'race@example.test' };
    await Promise.all(Array.from({ length: 10 }, (_, i) => (i % 2 ? a : b).services.notify.grants.needsReauth(ref)));
    await Promise.all(Array.from({ length: 10 }, (_, i) => (i % 2 ? b : a).services.notify.grants.recovered(ref)));
    await waitFor('both events', () =>
      receiver.accepted.some((e) => e.target === 'smtp_server:srv_race' && e.type === 'grant.recovered'),
    );
    await afterInstancesLookAgain([a, b]);
    const race = receiver.accepted.filter((e) => e.target === 'smtp_server:srv_race');
    expect(race.map((e) => e.type).sort()).toEqual(['grant.needs_reauth', 'grant.recovered']);
  });
});
