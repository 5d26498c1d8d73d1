import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GRANTS, type GrantRecord } from '../../src/tokens/grants.js';
import { startTestApp, type TestApp } from '../fakes/app.js';
import { afterInstancesLookAgain, notifyEventsOfType } from '../fakes/look-again.js';
import { startOAuthSmtp, type OAuthSmtp } from '../fakes/oauth-flow.js';
import { authorizeThroughServices, createOAuthServer, providerEnv, TEST_ACTOR } from '../fakes/oauth-setup.js';
import { startFakeProvider, type FakeProvider } from '../fakes/oidc-provider.js';
import { startWebhookReceiver, waitFor, type WebhookReceiver } from '../fakes/webhook-receiver.js';

/**
 * grant.recovered does not depend on the process that stored the grant living long enough to report it: a
 * grant reported as needing re-authorization that is active again in the store (written by a process that
 * died right after, simulated by writing the record directly) is reported once by the periodic check, and
 * the checks that follow report nothing more. A grant that is gone is not "recovered".
 */

describe('grant.recovered catch-up by the periodic check', () => {
  let provider: FakeProvider;
  let oauthSmtp: OAuthSmtp;
  let receiver: WebhookReceiver;
  let app: TestApp;
  let serverId: string;
  const secret = randomBytes(32).toString('hex');

  beforeAll(async () => {
    provider = await startFakeProvider({ kind: 'microsoft', accessTokenTtlSec: 3600 });
    oauthSmtp = await startOAuthSmtp(provider);
    receiver = await startWebhookReceiver(secret);
    app = await startTestApp({
      workers: true,
      env: providerEnv(provider),
      seams: { notifyTuning: { pollMs: 30, webhookTimeoutMs: 1000, backoffBaseMs: 50, backoffCapMs: 200 } },
    });
    ({ serverId } = await createOAuthServer(app.services, provider, oauthSmtp.port));
    await authorizeThroughServices(app.services, serverId);
    await app.services.notify.channels.create(
      { name: 'hook', type: 'webhook', url: receiver.url, secret, events: ['grant.needs_reauth', 'grant.recovered'] },
      TEST_ACTOR,
    );
  }, 60_000);

  afterAll(async () => {
    await app?.close();
    await receiver?.close();
    await oauthSmtp?.close();
    await provider?.close();
  });

  it('an active grant whose recovery was never reported: one grant.recovered from the check', async () => {
    provider.disableAccount('alice@example.test');
    await expect(app.services.tokens.getAccessToken(serverId, { force: true })).rejects.toThrow();
    await waitFor('grant.needs_reauth', () => receiver.ofType('grant.needs_reauth').length === 1);

    // The grant is active again, but no listener heard of it.
    const doc = (await app.store.get<GrantRecord>(GRANTS, serverId))!;
    expect(doc.value.status).toBe('needs_reauth');
    await app.store.put(GRANTS, serverId, { ...doc.value, status: 'active' }, { ifVersion: doc.version });
    await app.services.notify.check();
    await waitFor('grant.recovered', () => receiver.ofType('grant.recovered').length > 0);
    expect(receiver.ofType('grant.recovered')[0]!.target).toBe(`smtp_server:${serverId}`);

    await app.services.notify.check();
    await app.services.notify.check();
    await afterInstancesLookAgain([app]);
    expect(await notifyEventsOfType(app.store, 'grant.recovered')).toBe(1);
    expect(receiver.ofType('grant.recovered')).toHaveLength(1);
    expect(receiver.badSignatures).toBe(0);
  });

  it('a grant that is gone is not reported as recovered', async () => {
    const ref = { serverId: 'srv_gone', mailbox: 'gone@example.test' };
    await app.services.notify.grants.needsReauth(ref);
    await waitFor('grant.needs_reauth of srv_gone', () =>
      receiver.accepted.some((e) => e.target === 'smtp_server:srv_gone'),
    );
    await afterInstancesLookAgain([app]);
    expect(await notifyEventsOfType(app.store, 'grant.recovered', 'smtp_server:srv_gone')).toBe(0);
    expect(receiver.accepted.filter((e) => e.target === 'smtp_server:srv_gone').map((e) => e.type)).toEqual([
      'grant.needs_reauth',
    ]);
  });
});
