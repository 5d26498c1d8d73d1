import http from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import Provider from 'oidc-provider';

/**
 * A real OpenID provider (oidc-provider 9) standing in for Google or Microsoft in tests.
 *
 * - `google`: issuer at the root, refresh tokens that do not rotate, scope `https://mail.google.com/`,
 *   an RFC 7009 revocation endpoint.
 * - `microsoft`: issuer `/<tenant>/v2.0`, strict refresh token rotation (reuse revokes the grant),
 *   scopes `https://outlook.office.com/SMTP.Send offline_access`, no revocation endpoint.
 *
 * Both: access tokens live `accessTokenTtlSec` seconds, introspection is on so a test SMTP server can
 * validate XOAUTH2 tokens, devInteractions accept any login (`alice@example.test` becomes the account and
 * its email; a login without `@` yields an account without email, one starting with `unverified+` an email with
 * `email_verified: false`). The device flow feature is on (`/device`, see device-flow.ts). Faults are injected at the HTTP edge
 * of the token endpoint (503, hang) or by disabling an account, which makes every refresh of its grants
 * fail with the provider's own `invalid_grant`.
 */

export type FakeProviderKind = 'google' | 'microsoft';
export type TokenFault = 'none' | '503' | 'hang';

export interface FakeProviderOptions {
  kind: FakeProviderKind;
  tenant?: string;
  accessTokenTtlSec?: number;
  /** How long a device flow user code stays valid (default 600 s). */
  deviceCodeTtlSec?: number;
}

export interface FakeClient {
  clientId: string;
  clientSecret: string;
  redirectUris: string[];
}

export interface FakeProvider {
  kind: FakeProviderKind;
  /** The issuer identifier (`http://127.0.0.1:port` or `http://127.0.0.1:port/<tenant>/v2.0`). */
  issuer: string;
  /** Origin the preset needs: MAILGATE_GOOGLE_ISSUER or MAILGATE_MICROSOFT_AUTHORITY. */
  authority: string;
  tenant: string;
  port: number;
  /** Token requests that reached the provider, by grant type (faulted ones are not counted). */
  counts: {
    refresh: number;
    authorizationCode: number;
    clientCredentials: number;
    revocations: number;
    refreshErrors: number;
    introspections: number;
  };
  /** Token requests seen at the HTTP edge, including faulted ones. */
  edgeTokenRequests: number;
  setTokenFault(fault: TokenFault): void;
  registerClient(client: FakeClient): Promise<void>;
  /** Changes a client's secret at the provider (the old one stops working at once). */
  changeClientSecret(clientId: string, secret: string): Promise<void>;
  /** The account is gone: every refresh of its grants now yields invalid_grant. */
  disableAccount(accountId: string): void;
  enableAccount(accountId: string): void;
  /** RFC 7662 introspection with the built-in resource-server client. */
  introspect(token: string): Promise<{ active: boolean; sub?: string; scope?: string; client_id?: string }>;
  close(): Promise<void>;
}

export const SMTP_RESOURCE_SERVER = {
  clientId: 'smtp-resource-server',
  clientSecret: 'smtp-resource-server-secret-0123456789',
};

export async function startFakeProvider(options: FakeProviderOptions): Promise<FakeProvider> {
  const kind = options.kind;
  const tenant = options.tenant ?? '11111111-2222-3333-4444-555555555555';
  const ttl = options.accessTokenTtlSec ?? 5;

  const app = express();
  const server = http.createServer(app);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  const authority = `http://127.0.0.1:${port}`;
  const mountPath = kind === 'microsoft' ? `/${tenant}/v2.0` : '';
  const issuer = `${authority}${mountPath}`;

  const disabled = new Set<string>();
  const mailScopes = kind === 'google' ? ['https://mail.google.com/'] : ['https://outlook.office.com/SMTP.Send'];
  // The HTTP mail APIs' scopes (test/fakes/graph-api.ts and gmail-api.ts check them by introspection).
  const apiScopes =
    kind === 'google' ? ['https://www.googleapis.com/auth/gmail.send'] : ['https://graph.microsoft.com/Mail.Send'];

  const provider = new Provider(issuer, {
    clients: [
      {
        client_id: SMTP_RESOURCE_SERVER.clientId,
        client_secret: SMTP_RESOURCE_SERVER.clientSecret,
        redirect_uris: [],
        response_types: [],
        grant_types: [],
      },
    ],
    scopes: ['openid', 'email', 'offline_access', ...mailScopes, ...apiScopes],
    claims: { openid: ['sub'], email: ['email', 'email_verified'] },
    conformIdTokenClaims: false,
    features: {
      devInteractions: { enabled: true },
      revocation: { enabled: kind === 'google' },
      introspection: { enabled: true, allowedPolicy: async () => true },
      resourceIndicators: { enabled: false },
      clientCredentials: { enabled: true },
      // RFC 8628, as Microsoft offers it: `mailgate authorize <server> --device` runs against it.
      deviceFlow: { enabled: true },
    },
    ttl: {
      AccessToken: ttl,
      ClientCredentials: ttl,
      IdToken: 3600,
      Interaction: 600,
      Session: 3600,
      Grant: 86400,
      RefreshToken: 86400,
      AuthorizationCode: 60,
      DeviceCode: options.deviceCodeTtlSec ?? 600,
    },
    // Google issues refresh tokens on access_type=offline (no offline_access scope); Microsoft on offline_access.
    issueRefreshToken: async (_ctx, client, code) =>
      client.grantTypeAllowed('refresh_token') && (kind === 'google' || code.scopes.has('offline_access')),
    rotateRefreshToken: kind === 'microsoft',
    extraParams: ['access_type'],
    pkce: { required: () => true },
    cookies: { keys: ['fake-provider-cookie-key-0123456789abcdef'] },
    async findAccount(_ctx, sub) {
      if (disabled.has(sub)) return undefined;
      return {
        accountId: sub,
        async claims() {
          return sub.includes('@') ? { sub, email: sub, email_verified: !sub.startsWith('unverified+') } : { sub };
        },
      };
    },
  });
  provider.proxy = false;

  const counts = {
    refresh: 0,
    authorizationCode: 0,
    clientCredentials: 0,
    revocations: 0,
    refreshErrors: 0,
    introspections: 0,
  };
  provider.on('grant.success', (ctx) => {
    const gt = (ctx.oidc.params as { grant_type?: string } | undefined)?.grant_type;
    if (gt === 'refresh_token') counts.refresh++;
    else if (gt === 'authorization_code') counts.authorizationCode++;
    else if (gt === 'client_credentials') counts.clientCredentials++;
  });
  provider.on('grant.error', (ctx) => {
    const gt = (ctx.oidc.params as { grant_type?: string } | undefined)?.grant_type;
    if (gt === 'refresh_token') counts.refreshErrors++;
  });

  let fault: TokenFault = 'none';
  const fake: FakeProvider = {
    kind,
    issuer,
    authority,
    tenant,
    port,
    counts,
    edgeTokenRequests: 0,
    setTokenFault(f) {
      fault = f;
    },
    async registerClient(c) {
      const adapter = (
        provider.Client as unknown as {
          adapter: { upsert(id: string, payload: object, expiresIn?: number): Promise<void> };
        }
      ).adapter;
      await adapter.upsert(c.clientId, {
        client_id: c.clientId,
        client_secret: c.clientSecret,
        redirect_uris: c.redirectUris,
        grant_types: [
          'authorization_code',
          'refresh_token',
          'client_credentials',
          'urn:ietf:params:oauth:grant-type:device_code',
        ],
        response_types: ['code'],
        token_endpoint_auth_method: 'client_secret_basic',
      });
    },
    async changeClientSecret(clientId, secret) {
      const adapter = (
        provider.Client as unknown as {
          adapter: {
            find(id: string): Promise<Record<string, unknown> | undefined>;
            upsert(id: string, payload: object): Promise<void>;
          };
        }
      ).adapter;
      const current = await adapter.find(clientId);
      if (!current) throw new Error(`no client ${clientId}`);
      await adapter.upsert(clientId, { ...current, client_secret: secret });
    },
    disableAccount(accountId) {
      disabled.add(accountId);
    },
    enableAccount(accountId) {
      disabled.delete(accountId);
    },
    async introspect(token) {
      const res = await fetch(`${issuer}/token/introspection`, {
        method: 'POST',
        headers: {
          authorization: `Basic ${Buffer.from(`${SMTP_RESOURCE_SERVER.clientId}:${SMTP_RESOURCE_SERVER.clientSecret}`).toString('base64')}`,
          'content-type': 'application/x-www-form-urlencoded',
        },
        body: new URLSearchParams({ token }).toString(),
      });
      counts.introspections++;
      return (await res.json()) as { active: boolean; sub?: string; scope?: string; client_id?: string };
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };

  const hung = new Set<http.ServerResponse>();
  app.use((req, res, next) => {
    if (req.method === 'POST' && req.path === `${mountPath}/token/revocation`) {
      // oidc-provider emits no success event for revocation: count answered requests here.
      res.on('finish', () => {
        if (res.statusCode === 200) counts.revocations++;
      });
    }
    if (req.method === 'POST' && req.path === `${mountPath}/token`) {
      fake.edgeTokenRequests++;
      if (fault === '503') {
        res.status(503).type('text/plain').send('Service Unavailable');
        return;
      }
      if (fault === 'hang') {
        hung.add(res);
        res.on('close', () => hung.delete(res));
        return;
      }
    }
    next();
  });
  app.use(mountPath || '/', provider.callback());
  return fake;
}
