import { createPublicKey, verify } from 'node:crypto';
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
 *
 * App-only access: the client credentials grant for clients authenticating with a secret (basic or post) or
 * with `private_key_jwt` (a registered JWKS; Microsoft's certificate credentials), and for the Google kind the
 * RFC 7523 JWT bearer grant of registered service accounts (`registerServiceAccount`): the assertion must be
 * signed by the account's key, issued by its email, for the token endpoint, with scopes the account is
 * delegated; the token's subject is the assertion's `sub` (the mailbox), so introspection names it.
 */

export const JWT_BEARER = 'urn:ietf:params:oauth:grant-type:jwt-bearer';

export interface FakeServiceAccount {
  clientEmail: string;
  /** The OAuth client id of the account (sent as client_id by clients without client authentication). */
  clientId: string;
  publicKeyPem: string;
  /** Scopes granted by domain-wide delegation. */
  delegatedScopes: string[];
}

export type FakeProviderKind = 'google' | 'microsoft';
/** `429`: Entra's throttling answer (Retry-After 60, AADSTS50196-like), for app-only token storms. */
export type TokenFault = 'none' | '503' | '429' | 'hang';

export interface FakeProviderOptions {
  kind: FakeProviderKind;
  tenant?: string;
  accessTokenTtlSec?: number;
  /** How long a device flow user code stays valid (default 600 s). */
  deviceCodeTtlSec?: number;
  /** More scopes the provider grants: another cloud's resources (`<Graph origin>/Mail.Send`, `…/.default`). */
  extraScopes?: string[];
}

export interface FakeClient {
  clientId: string;
  /** Absent for private_key_jwt clients. */
  clientSecret?: string;
  redirectUris: string[];
  authMethod?: 'client_secret_basic' | 'client_secret_post' | 'private_key_jwt';
  /** Public keys of a private_key_jwt client (JWKs). */
  jwks?: object[];
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
    jwtBearer: number;
    jwtBearerErrors: number;
    revocations: number;
    refreshErrors: number;
    introspections: number;
  };
  /** Token requests seen at the HTTP edge, including faulted ones. */
  edgeTokenRequests: number;
  /** The JOSE header and claims of the last accepted private_key_jwt client assertion. */
  lastClientAssertion: { header: Record<string, unknown>; payload: Record<string, unknown> } | null;
  setTokenFault(fault: TokenFault): void;
  registerClient(client: FakeClient): Promise<void>;
  /** Changes the public keys of a private_key_jwt client (a certificate replaced at the provider). */
  changeClientKeys(clientId: string, jwks: object[]): Promise<void>;
  /** Google kind: a service account whose JWT bearer assertions are accepted. */
  registerServiceAccount(account: FakeServiceAccount): Promise<void>;
  /** Replaces a service account's key (the old one stops working at once). */
  changeServiceAccountKey(clientEmail: string, publicKeyPem: string): void;
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
  // App-only scopes: `.default` of Exchange Online and Graph; the Gmail API's send scope for service accounts.
  const appOnlyScopes =
    kind === 'google'
      ? ['https://www.googleapis.com/auth/gmail.send']
      : ['https://outlook.office365.com/.default', 'https://graph.microsoft.com/.default'];

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
    scopes: [
      'openid',
      'email',
      'offline_access',
      ...new Set([...mailScopes, ...apiScopes, ...appOnlyScopes, ...(options.extraScopes ?? [])]),
    ],
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

  const serviceAccounts = new Map<string, FakeServiceAccount>();
  provider.registerGrantType(
    JWT_BEARER,
    async (ctx) => {
      const err = (description: string) => {
        counts.jwtBearerErrors++;
        ctx.status = 400;
        ctx.body = { error: 'invalid_grant', error_description: description };
      };
      const assertion = String((ctx.oidc.params as { assertion?: string }).assertion ?? '');
      const [h, p, sig] = assertion.split('.');
      if (!h || !p || !sig) return err('malformed assertion');
      const claims = JSON.parse(Buffer.from(p, 'base64url').toString()) as Record<string, unknown>;
      const account = serviceAccounts.get(String(claims.iss));
      if (!account || account.clientId !== ctx.oidc.client.clientId) return err('unknown service account');
      const key = createPublicKey(account.publicKeyPem);
      if (!verify('sha256', Buffer.from(`${h}.${p}`), key, Buffer.from(sig, 'base64url')))
        return err('Invalid JWT Signature.');
      const now = Math.floor(Date.now() / 1000);
      if (claims.aud !== `${issuer}/token`) return err('Invalid JWT: bad audience');
      if (typeof claims.exp !== 'number' || claims.exp < now || claims.exp - now > 3600)
        return err('Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe.');
      const scopes = (typeof claims.scope === 'string' ? claims.scope : '').split(' ').filter(Boolean);
      if (scopes.length === 0 || scopes.some((s) => !account.delegatedScopes.includes(s))) {
        counts.jwtBearerErrors++;
        ctx.status = 401;
        ctx.body = {
          error: 'unauthorized_client',
          error_description:
            'Client is unauthorized to retrieve access tokens using this method, or client not authorized for any of the scopes requested.',
        };
        return;
      }
      const sub = typeof claims.sub === 'string' ? claims.sub : account.clientEmail;
      if (disabled.has(sub)) return err('Invalid email or User ID');
      const grant = new provider.Grant({ accountId: sub, clientId: ctx.oidc.client.clientId });
      const token = new provider.AccessToken({
        accountId: sub,
        grantId: await grant.save(),
        client: ctx.oidc.client,
        scope: scopes.join(' '),
        gty: 'jwt_bearer',
      });
      const value = await token.save();
      counts.jwtBearer++;
      ctx.body = { access_token: value, token_type: 'Bearer', expires_in: token.expiration, scope: token.scope };
    },
    ['assertion'],
  );

  const counts = {
    refresh: 0,
    authorizationCode: 0,
    clientCredentials: 0,
    jwtBearer: 0,
    jwtBearerErrors: 0,
    revocations: 0,
    refreshErrors: 0,
    introspections: 0,
  };
  provider.on('grant.success', (ctx) => {
    const gt = (ctx.oidc.params as { grant_type?: string } | undefined)?.grant_type;
    if (gt === 'refresh_token') counts.refresh++;
    else if (gt === 'authorization_code') counts.authorizationCode++;
    else if (gt === 'client_credentials') counts.clientCredentials++;
    const assertion = (ctx.oidc.params as { client_assertion?: string } | undefined)?.client_assertion;
    if (assertion) {
      const [h, p] = assertion.split('.');
      const decode = (part: string | undefined) =>
        JSON.parse(Buffer.from(part ?? '', 'base64url').toString()) as Record<string, unknown>;
      fake.lastClientAssertion = { header: decode(h), payload: decode(p) };
    }
  });
  provider.on('grant.error', (ctx) => {
    const gt = (ctx.oidc.params as { grant_type?: string } | undefined)?.grant_type;
    if (gt === 'refresh_token') counts.refreshErrors++;
  });

  const clientAdapter = () =>
    (
      provider.Client as unknown as {
        adapter: {
          find(id: string): Promise<Record<string, unknown> | undefined>;
          upsert(id: string, payload: object): Promise<void>;
        };
      }
    ).adapter;
  let fault: TokenFault = 'none';
  const fake: FakeProvider = {
    kind,
    issuer,
    authority,
    tenant,
    port,
    counts,
    edgeTokenRequests: 0,
    lastClientAssertion: null,
    setTokenFault(f) {
      fault = f;
    },
    async registerClient(c) {
      await clientAdapter().upsert(c.clientId, {
        client_id: c.clientId,
        ...(c.clientSecret ? { client_secret: c.clientSecret } : {}),
        ...(c.jwks ? { jwks: { keys: c.jwks } } : {}),
        redirect_uris: c.redirectUris,
        // Without a redirect URI the app is app-only: client credentials and nothing else.
        grant_types:
          c.redirectUris.length > 0
            ? [
                'authorization_code',
                'refresh_token',
                'client_credentials',
                'urn:ietf:params:oauth:grant-type:device_code',
              ]
            : ['client_credentials'],
        response_types: c.redirectUris.length > 0 ? ['code'] : [],
        token_endpoint_auth_method: c.authMethod ?? 'client_secret_basic',
      });
    },
    async changeClientKeys(clientId, jwks) {
      const current = await clientAdapter().find(clientId);
      if (!current) throw new Error(`no client ${clientId}`);
      await clientAdapter().upsert(clientId, { ...current, jwks: { keys: jwks } });
    },
    async registerServiceAccount(account) {
      serviceAccounts.set(account.clientEmail, { ...account });
      await clientAdapter().upsert(account.clientId, {
        client_id: account.clientId,
        redirect_uris: [],
        grant_types: [JWT_BEARER],
        response_types: [],
        token_endpoint_auth_method: 'none',
      });
    },
    changeServiceAccountKey(clientEmail, publicKeyPem) {
      const account = serviceAccounts.get(clientEmail);
      if (!account) throw new Error(`no service account ${clientEmail}`);
      account.publicKeyPem = publicKeyPem;
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
      if (fault === '429') {
        res.status(429).set('retry-after', '60').json({
          error: 'temporarily_unavailable',
          error_description: 'AADSTS50196: The server terminated an operation because it encountered a loop.',
        });
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
