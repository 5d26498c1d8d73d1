import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../../src/cli.js';
import type { CliIO } from '../../src/cli/types.js';
import { GRANTS, openToken, type GrantRecord } from '../../src/tokens/grants.js';
import { startTestApp, type TestApp } from '../fakes/app.js';
import { confirmDeviceCode } from '../fakes/device-flow.js';
import { createOAuthServer, providerEnv, TEST_ACTOR } from '../fakes/oauth-setup.js';
import { startFakeProvider, type FakeProvider } from '../fakes/oidc-provider.js';
import { redisUrlForTests } from '../fakes/redis.js';

/**
 * `mailgate authorize <server> --device` against oidc-provider's device flow feature. The CLI runs in this
 * process on the app's Redis; the test plays the user: it reads `user_code` from the CLI's stdout as it is
 * printed and confirms it at the provider's device page with plain HTTP requests.
 */

interface RunningCli {
  /** Resolves with the first `verification_uri` and `user_code` lines. */
  prompt: Promise<{ verificationUri: string; userCode: string }>;
  done: Promise<{ code: number; stdout: string; stderr: string }>;
}

function startCli(env: Record<string, string>, ...argv: string[]): RunningCli {
  const out = new PassThrough();
  const err = new PassThrough();
  let stdout = '';
  let stderr = '';
  let resolvePrompt: (p: { verificationUri: string; userCode: string }) => void = () => {};
  const prompt = new Promise<{ verificationUri: string; userCode: string }>((resolve) => (resolvePrompt = resolve));
  out.on('data', (c: Buffer) => {
    stdout += c.toString('utf8');
    const uri = /^verification_uri: (\S+)$/m.exec(stdout)?.[1];
    const code = /^user_code: (\S+)$/m.exec(stdout)?.[1];
    if (uri && code) resolvePrompt({ verificationUri: uri, userCode: code });
  });
  err.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
  const io: CliIO = { stdout: out, stderr: err, env, onInterrupt: () => () => {} };
  const done = runCli(argv, io).then((code) => ({ code, stdout, stderr }));
  return { prompt, done };
}

describe.skipIf(!redisUrlForTests())('mailgate authorize --device (RFC 8628)', () => {
  let provider: FakeProvider;
  let app: TestApp;
  let serverId: string;

  beforeAll(async () => {
    provider = await startFakeProvider({ kind: 'microsoft', accessTokenTtlSec: 60 });
    app = await startTestApp({ store: 'redis', env: providerEnv(provider) });
    ({ serverId } = await createOAuthServer(app.services, provider, 2525));
  });
  afterAll(async () => {
    await app?.close();
    await provider?.close();
  });

  it('prints the URL and code, waits for the user, stores the grant like the browser flow, exits 0', async () => {
    const cli = startCli(app.env, 'authorize', serverId, '--device');
    const { verificationUri, userCode } = await cli.prompt;
    expect(verificationUri).toBe(`${provider.issuer}/device`);
    const page = await confirmDeviceCode(verificationUri, userCode, 'alice@example.test');
    expect(page).toContain('Sign-in Success');
    const result = await cli.done;
    expect(result.stderr).not.toMatch(/failed/i);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('now sends as alice@example.test');
    const grant = await app.store.get<GrantRecord>(GRANTS, serverId);
    expect(grant?.value.status).toBe('active');
    expect(grant?.value.mailbox).toBe('alice@example.test');
    // Sealed like every grant, and the refresh token works with the token service.
    expect(grant?.value.tokens.refreshToken).toMatch(/^mg1\./);
    expect(openToken(app.services.keyring, serverId, 'refreshToken', grant!.value.tokens.refreshToken!)).not.toBe('');
    const access = await app.services.tokens.getAccessToken(serverId, { force: true });
    expect((await provider.introspect(access.accessToken)).active).toBe(true);
    const audit = (await app.services.audit.list({ limit: 50 })).entries.find(
      (e) => e.action === 'oauth.authorize' && e.detail?.via === 'device_code',
    );
    expect(audit?.outcome).toBe('success');
    expect(audit?.actor.type).toBe('cli');
  });

  it('denied at the provider → non-zero with the reason, nothing changed (a Japanese terminal reads it in Japanese)', async () => {
    await app.store.delete(GRANTS, serverId);
    const cli = startCli({ ...app.env, LANG: 'ja_JP.UTF-8' }, 'authorize', serverId, '--device');
    const { verificationUri, userCode } = await cli.prompt;
    await confirmDeviceCode(verificationUri, userCode, 'alice@example.test', { deny: true });
    const result = await cli.done;
    expect(result.code).not.toBe(0);
    expect(result.stderr).toContain('プロバイダーでアクセスが拒否されました');
    // The prompt is Japanese too; the machine-readable lines on stdout are not translated.
    expect(result.stderr).toContain(`コード ${userCode} を入力して`);
    expect(result.stdout).toMatch(/^user_code: \S+$/m);
    expect(await app.store.get(GRANTS, serverId)).toBeNull();
    const audit = (await app.services.audit.list({ limit: 50 })).entries.find(
      (e) => e.action === 'oauth.authorize' && e.detail?.via === 'device_code' && e.outcome === 'failure',
    );
    expect(audit?.detail?.error).toBe('denied');
  });

  it('a code nobody confirms expires → non-zero with the reason', async () => {
    const shortLived = await startFakeProvider({ kind: 'microsoft', deviceCodeTtlSec: 2 });
    const other = await startTestApp({ store: 'redis', env: providerEnv(shortLived) });
    try {
      const created = await createOAuthServer(other.services, shortLived, 2525);
      const result = await startCli(other.env, 'authorize', created.serverId, '--device').done;
      expect(result.stdout).toMatch(/^user_code: \S+$/m);
      expect(result.code).toBe(1);
      expect(result.stderr).toContain('expired');
      expect(await other.store.get(GRANTS, created.serverId)).toBeNull();
    } finally {
      await other.close();
      await shortLived.close();
    }
  });

  it('refuses a server that is not OAuth and an integration that is not Microsoft, before any prompt', async () => {
    const basic = await app.services.mail.servers.create(
      { name: 'plain', fromAddress: 'a@example.test', host: '127.0.0.1', port: 2525, protocol: 'smtp' },
      { actor: TEST_ACTOR },
    );
    const notOauth = await startCli(app.env, 'authorize', basic.id, '--device').done;
    expect(notOauth.code).toBe(1);
    expect(notOauth.stderr).toContain('does not use OAuth 2.0');
    expect(notOauth.stdout).not.toContain('user_code');
    // A Japanese terminal reads the same refusal in Japanese (LC_ALL wins over LANG, as POSIX has it).
    const japanese = await startCli(
      { ...app.env, LANG: 'en_US.UTF-8', LC_ALL: 'ja_JP.UTF-8' },
      'authorize',
      basic.id,
      '--device',
    ).done;
    expect(japanese.code).toBe(1);
    expect(japanese.stderr).toContain(`サーバー ${basic.id} は OAuth 2.0 を使用していません`);

    // Refused before the provider is contacted: no Google provider needs to run.
    {
      const integration = await app.services.oauthIntegrations.create(
        { name: 'Workspace', provider: 'google', clientId: 'g', clientSecret: 'google-secret-0123456789' },
        TEST_ACTOR,
      );
      const server = await app.services.mail.servers.create(
        {
          name: 'gmail',
          fromAddress: 'a@example.test',
          host: '127.0.0.1',
          port: 2525,
          protocol: 'smtp',
          authMethod: 'oauth2',
          oauthIntegrationId: integration.id,
        },
        { actor: TEST_ACTOR },
      );
      const notMicrosoft = await startCli(app.env, 'authorize', server.id, '--device').done;
      expect(notMicrosoft.code).toBe(1);
      expect(notMicrosoft.stderr).toContain('for Microsoft integrations');
      expect(notMicrosoft.stdout).not.toContain('user_code');
    }
    const usage = await startCli(app.env, 'authorize', serverId).done;
    expect(usage.code).toBe(2);
  });
});
