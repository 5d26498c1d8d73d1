import { describe, expect, it } from 'vitest';
import type { ResolvedServer } from './servers.js';
import { buildTransportOptions, createLineMasker } from './transport.js';

const server = (p: Partial<ResolvedServer> = {}): ResolvedServer => ({
  id: 's',
  version: 1,
  source: 'ui',
  name: 'S',
  fromAddress: 'a@example.com',
  emailPrefix: null,
  protocol: 'smtp',
  host: 'smtp.example.com',
  port: 587,
  timeoutMs: 10_000,
  tls: true,
  authMethod: 'basic',
  oauthIntegrationId: null,
  username: 'u',
  password: 'p',
  passwordVersion: 1,
  ehloName: null,
  ...p,
});

describe('buildTransportOptions', () => {
  it('maps the timeout onto connection, greeting and socket timeouts; 0 means (practically) forever', () => {
    const o = buildTransportOptions(server({ timeoutMs: 1234 }), { type: 'none' }, { pool: true });
    expect([o.connectionTimeout, o.greetingTimeout, o.socketTimeout]).toEqual([2468, 1234, 1234]);
    const forever = buildTransportOptions(server({ timeoutMs: 0 }), { type: 'none' }, { pool: true });
    expect(forever.connectionTimeout).toBe(2_147_483_647);
  });
  it('tls → requireTLS; smtps → secure; credentials force requireTLS except on loopback', () => {
    expect(buildTransportOptions(server(), { type: 'none' }, { pool: false })).toMatchObject({
      secure: false,
      requireTLS: true,
    });
    expect(
      buildTransportOptions(server({ protocol: 'smtps', tls: false }), { type: 'none' }, { pool: false }),
    ).toMatchObject({ secure: true, requireTLS: false });
    expect(
      buildTransportOptions(server({ tls: false }), { type: 'basic', user: 'u', pass: 'p' }, { pool: false })
        .requireTLS,
    ).toBe(true);
    expect(buildTransportOptions(server({ tls: false }), { type: 'none' }, { pool: false }).requireTLS).toBe(false);
    expect(
      buildTransportOptions(
        server({ tls: false, host: '127.0.0.1' }),
        { type: 'basic', user: 'u', pass: 'p' },
        { pool: false },
      ).requireTLS,
    ).toBe(false);
  });
  it('EHLO name, pooling with unlimited messages per connection, no file or URL access', () => {
    const o = buildTransportOptions(
      server({ ehloName: 'mg.example.org' }),
      { type: 'none' },
      { pool: true, maxConnections: 3 },
    );
    expect(o).toMatchObject({
      name: 'mg.example.org',
      pool: true,
      maxConnections: 3,
      maxMessages: Infinity,
      disableFileAccess: true,
      disableUrlAccess: true,
    });
  });
  it('XOAUTH2 asks the token source through provisionCallback, forwarding renew as force', async () => {
    const calls: Array<[string, boolean]> = [];
    const o = buildTransportOptions(
      server(),
      { type: 'OAuth2', user: 'box@example.com', grantId: 'g1' },
      {
        pool: true,
        tokens: {
          async getAccessToken(grantId, { force }) {
            calls.push([grantId, force]);
            return { accessToken: `token-${calls.length}`, expiresAt: 42 };
          },
        },
      },
    );
    const auth = o.auth as {
      type: string;
      user: string;
      provisionCallback: (u: string, r: boolean, cb: (e: Error | null, t?: string, x?: number) => void) => void;
    };
    expect(auth).toMatchObject({ type: 'OAuth2', user: 'box@example.com' });
    expect(auth).not.toHaveProperty('clientSecret');
    expect(auth).not.toHaveProperty('refreshToken');
    const got = await new Promise<[string | undefined, number | undefined]>((resolve, reject) =>
      auth.provisionCallback('box@example.com', true, (e, t, x) => (e ? reject(e) : resolve([t, x]))),
    );
    expect(got).toEqual(['token-1', 42]);
    expect(calls).toEqual([['g1', true]]);
  });
});

describe('createLineMasker', () => {
  it('masks AUTH payloads and the LOGIN steps, nothing else', () => {
    const mask = createLineMasker();
    expect(mask('client', 'AUTH PLAIN AGFsaWNlAHNlY3JldA==')).toBe('AUTH PLAIN ****');
    expect(mask('client', 'AUTH XOAUTH2 dXNlcj1hAWF1dGg9QmVhcmVyIHh5egEB')).toBe('AUTH XOAUTH2 ****');
    expect(mask('client', 'AUTH LOGIN')).toBe('AUTH LOGIN');
    expect(mask('server', '334 VXNlcm5hbWU6')).toBe('334 VXNlcm5hbWU6');
    expect(mask('client', 'YWxpY2U=')).toBe('****');
    expect(mask('server', '334 UGFzc3dvcmQ6')).toBe('334 UGFzc3dvcmQ6');
    expect(mask('client', 'c2VjcmV0')).toBe('****');
    expect(mask('server', '235 Authentication successful')).toBe('235 Authentication successful');
    expect(mask('client', 'MAIL FROM:<a@example.com>')).toBe('MAIL FROM:<a@example.com>');
  });
});
