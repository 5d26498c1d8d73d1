import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { API_KEYS } from '../../src/admin/api-keys.js';
import { USERS } from '../../src/admin/users.js';
import { isSealed } from '../../src/crypto/keyring.js';
import { LOCAL_SECRETS_FILE, resolveSecrets } from '../../src/crypto/local-secrets.js';
import { TRANSACTIONS } from '../../src/tokens/authorize.js';
import { INTEGRATIONS } from '../../src/oauth/integrations.js';
import { SERVERS } from '../../src/mail/servers.js';
import { GRANTS, openToken, type GrantRecord } from '../../src/tokens/grants.js';
import { startTestApp, type HttpSession, type TestApp } from '../fakes/app.js';
import { consentAtProvider, startOAuthSmtp, type OAuthSmtp } from '../fakes/oauth-flow.js';
import { providerEnv } from '../fakes/oauth-setup.js';
import { startFakeProvider, type FakeProvider } from '../fakes/oidc-provider.js';
import { redisUrlForTests } from '../fakes/redis.js';
import { startTestSmtp, type TestSmtp } from '../fakes/smtp-server.js';

/**
 * The whole-system secrets check, on the embedded file store and on Redis. Distinct canary values enter
 * through the public paths (login form, JSON API, HTML forms, the Authorize redirect at a real provider,
 * the queue over AUTH PLAIN, AUTH LOGIN and XOAUTH2, Test connection with the debug transcript, client
 * secret rotation, Disconnect) with MAILGATE_MAIL_DEBUG on and the log at trace. Then every byte mailgate
 * keeps (every file of the data folder, or every key under the Redis prefix, sessions included), every log
 * line and every HTTP response body is searched for each canary, plain and inside base64 / base64url at any
 * alignment (AUTH PLAIN and XOAUTH2 carry base64). Each kept secret must also be found sealed where it
 * belongs, so the test fails if a secret simply stopped being stored.
 */

const canary = (label: string) => `CANARY-${label}-${randomBytes(10).toString('hex')}`;

/** The canary as it reads inside any base64 or base64url text, whatever bytes precede or follow it. */
export function encodedForms(secret: string): string[] {
  const forms = new Set([secret]);
  const bytes = Buffer.from(secret, 'utf8');
  for (const lead of [0, 1, 2]) {
    const buf = Buffer.concat([Buffer.alloc(lead, 0x00), bytes]);
    // Keep only the 4-character groups made of canary bytes alone: the first group mixes in the lead
    // bytes, the tail depends on what follows the canary.
    const fragment = buf.toString('base64').slice(lead === 0 ? 0 : 4, Math.floor(buf.length / 3) * 4);
    if (fragment.length >= 16) {
      forms.add(fragment);
      forms.add(fragment.replace(/\+/g, '-').replace(/\//g, '_'));
    }
  }
  return [...forms];
}

interface Secret {
  label: string;
  value: string;
  /** Where this value may legitimately be: the one response that hands out a new API key, the secrets file. */
  allowedIn?: string;
}

interface Haystack {
  where: string;
  text: string;
}

function leaks(haystacks: Haystack[], secrets: Secret[]): string[] {
  const found: string[] = [];
  for (const s of secrets) {
    const forms = encodedForms(s.value);
    for (const h of haystacks) {
      if (s.allowedIn && h.where === s.allowedIn) continue;
      const form = forms.find((f) => h.text.includes(f));
      if (form) found.push(`${s.label}${form === s.value ? '' : ' (base64)'} in ${h.where}`);
    }
  }
  return found;
}

async function walk(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(full, ...(await walk(full)));
    else out.push(full);
  }
  return out;
}

/** Every key under the prefix with its whole content, read by type. */
async function redisDump(url: string, prefix: string): Promise<Haystack[]> {
  const redis = new Redis(url, { lazyConnect: false, maxRetriesPerRequest: 1 });
  try {
    const keys: string[] = [];
    let cursor = '0';
    do {
      const [next, batch] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
      cursor = next;
      keys.push(...batch);
    } while (cursor !== '0');
    const out: Haystack[] = [];
    for (const key of new Set(keys)) {
      const type = await redis.type(key);
      let content: unknown;
      if (type === 'string') content = await redis.get(key);
      else if (type === 'hash') content = await redis.hgetall(key);
      else if (type === 'list') content = await redis.lrange(key, 0, -1);
      else if (type === 'set') content = await redis.smembers(key);
      else if (type === 'zset') content = await redis.zrange(key, '0', '-1', 'WITHSCORES');
      else if (type === 'stream') content = await redis.xrange(key, '-', '+');
      else if (type === 'none') continue;
      else throw new Error(`key ${key} has type ${type}, which this test does not read`);
      out.push({ where: `redis ${type} ${key}`, text: `${key}\n${JSON.stringify(content)}` });
    }
    return out;
  } finally {
    redis.disconnect();
  }
}

/** Everything mailgate keeps: each file of the data folder, or each key under the Redis prefix. */
async function readAtRest(app: TestApp, dataDir: string | null): Promise<Haystack[]> {
  if (app.config.REDIS_URL) return redisDump(app.config.REDIS_URL, app.config.MAILGATE_REDIS_PREFIX);
  const out: Haystack[] = [];
  for (const f of await walk(dataDir!)) {
    if ((await stat(f)).isFile()) out.push({ where: path.relative(dataDir!, f), text: await readFile(f, 'latin1') });
  }
  return out;
}

/** The stored JSON value of a document as the store wrote it (file or Redis hash), not through the Store API. */
async function rawDoc(
  app: TestApp,
  dataDir: string | null,
  collection: string,
  id: string,
): Promise<Record<string, unknown>> {
  if (!app.config.REDIS_URL) {
    // The collection's journal: the last line of the id is its current state.
    const text = await readFile(path.join(dataDir!, 'store', 'docs', `${collection}.jsonl`), 'utf8');
    const lines = text
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as { id: string; value?: Record<string, unknown>; deleted?: boolean });
    const last = lines.findLast((l) => l.id === id);
    if (!last?.value) throw new Error(`${collection}/${id} is not in the journal`);
    return last.value;
  }
  const redis = new Redis(app.config.REDIS_URL);
  try {
    const d = await redis.hget(`${app.config.MAILGATE_REDIS_PREFIX}d:${collection}:${id}`, 'd');
    if (!d) throw new Error(`${collection}/${id} is not in Redis`);
    return JSON.parse(d) as Record<string, unknown>;
  } finally {
    redis.disconnect();
  }
}

/** Presses Authorize over HTTP and returns the provider URL the interstitial page's form submits to. */
async function pressAuthorize(session: HttpSession, serverId: string): Promise<{ url: string; page: string }> {
  const { res, text } = await session.postForm(`/admin/smtp-servers/${serverId}/authorize`);
  expect(res.status).toBe(200);
  const action = /<form id="oauth-redirect" method="get" action="([^"]+)"/.exec(text)?.[1];
  if (!action) throw new Error('no provider form on the Authorize page');
  const url = new URL(action.replace(/&amp;/g, '&'));
  for (const m of text.matchAll(/<input type="hidden" name="([^"]+)" value="([^"]*)">/g)) {
    if (m[1] !== '_csrf')
      url.searchParams.set(
        m[1]!,
        m[2]!
          .replace(/&amp;/g, '&')
          .replace(/&#39;/g, "'")
          .replace(/&quot;/g, '"'),
      );
  }
  return { url: url.href, page: text };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Scenario {
  app: TestApp;
  dataDir: string | null;
  secrets: Secret[];
  responses: Haystack[];
  logLines: string[];
  /** What was kept while the grant still existed (just before Disconnect). */
  atRestBeforeDisconnect: Haystack[];
  ids: {
    relayServer: string;
    loginServer: string;
    oauthServer: string;
    integration: string;
    adminEmail: string;
    sendKeyId: string;
  };
  final: { relayPassword: string; loginPassword: string; clientSecret: string };
  startedAt: number;
}

interface Fixtures {
  provider: FakeProvider;
  /** AUTH PLAIN only. */
  relay: TestSmtp;
  relayAuth: { user: string; pass: string };
  /** AUTH LOGIN only. */
  loginRelay: TestSmtp;
  loginAuth: { user: string; pass: string };
  oauthSmtp: OAuthSmtp;
  /** AUTH PLAIN relay of the server defined in MAILGATE_SMTP_SERVERS_FILE (password from a secret file). */
  fileRelay: TestSmtp;
  fileRelayAuth: { user: string; pass: string };
  /** Every access token the XOAUTH2 relay was shown. */
  seenAccessTokens: Set<string>;
  /** What to clean up even when the scenario fails half way. */
  cleanup: { apps: TestApp[]; dirs: string[] };
}

async function runScenario(
  kind: 'file' | 'redis',
  {
    provider,
    relay,
    relayAuth,
    loginRelay,
    loginAuth,
    fileRelay,
    fileRelayAuth,
    oauthSmtp,
    seenAccessTokens,
    cleanup,
  }: Fixtures,
): Promise<Scenario> {
  const startedAt = Date.now();
  const secrets: Secret[] = [];
  const responses: Haystack[] = [];
  const logLines: string[] = [];
  const logSink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      logLines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
      cb();
    },
  });
  const add = (label: string, value: string, allowedIn?: string) => {
    expect(value.length, label).toBeGreaterThanOrEqual(20);
    if (!secrets.some((x) => x.value === value)) secrets.push({ label, value, ...(allowedIn ? { allowedIn } : {}) });
    return value;
  };

  const adminEmail = `first-admin-${randomBytes(3).toString('hex')}@example.test`;
  const adminPassword = add('first admin password', canary('admin-password'));
  const env: Record<string, string> = {
    MAILGATE_MAIL_DEBUG: 'true',
    MAILGATE_LOG_LEVEL: 'trace',
    MAILGATE_ADMIN_EMAIL: adminEmail,
    MAILGATE_ADMIN_PASSWORD: adminPassword,
    MAILGATE_QUEUE_RETRY_BASE_MS: '100',
    ...providerEnv(provider),
  };
  // A server defined outside the UI, its password in a secret file: kept in memory only, never stored or shown.
  const configDir = await mkdtemp(path.join(os.tmpdir(), 'mailgate-secrets-config-'));
  cleanup.dirs.push(configDir);
  add('SMTP password of the file-defined server', fileRelayAuth.pass);
  await writeFile(path.join(configDir, 'relay-password'), `${fileRelayAuth.pass}\n`, { mode: 0o600 });
  await writeFile(
    path.join(configDir, 'servers.json'),
    JSON.stringify({
      servers: [
        {
          id: 'file-relay',
          name: 'file relay',
          fromAddress: 'notify@example.test',
          host: '127.0.0.1',
          port: fileRelay.port,
          protocol: 'smtp',
          timeoutMs: 5000,
          authMethod: 'basic',
          username: fileRelayAuth.user,
          passwordFile: path.join(configDir, 'relay-password'),
        },
      ],
    }),
  );
  env.MAILGATE_SMTP_SERVERS_FILE = path.join(configDir, 'servers.json');
  let dataDir: string | null = null;
  if (kind === 'file') {
    // As on a first `npm start`: the data folder does not exist yet; the secrets file is created in it.
    const parent = await mkdtemp(path.join(os.tmpdir(), 'mailgate-secrets-'));
    cleanup.dirs.push(parent);
    dataDir = path.join(parent, 'data');
    const resolved = await resolveSecrets({
      MAILGATE_DATA_DIR: dataDir,
      encryptionKeys: undefined,
      sessionSecrets: undefined,
    });
    expect(resolved.local?.created).toBe(true);
    env.MAILGATE_DATA_DIR = dataDir;
    env.MAILGATE_ENCRYPTION_KEYS = resolved.encryptionKeys.map((k) => `${k.id}:${k.key.toString('base64')}`).join(',');
    env.MAILGATE_SESSION_SECRETS = resolved.sessionSecrets.join(',');
  }
  const app = await startTestApp({ store: kind, workers: true, env, logDestination: logSink });
  cleanup.apps.push(app);
  // The key material itself: only the embedded secrets file may hold it.
  for (const k of app.env.MAILGATE_ENCRYPTION_KEYS!.split(','))
    add('encryption key', k.slice(k.indexOf(':') + 1), LOCAL_SECRETS_FILE);
  for (const secret of app.env.MAILGATE_SESSION_SECRETS!.split(',')) add('session secret', secret, LOCAL_SECRETS_FILE);

  const admin = app.anonymousSession();
  async function page(where: string, p: string, status = 200) {
    const { res, text } = await admin.get(p);
    responses.push({ where, text: `${[...res.headers].map(([k, v]) => `${k}: ${v}`).join('\n')}\n\n${text}` });
    expect(res.status, `${where}: GET ${p}`).toBe(status);
    return text;
  }
  async function form(where: string, p: string, fields: Record<string, string | string[] | undefined>, status: number) {
    const { res, text } = await admin.postForm(p, fields);
    responses.push({ where, text: `${[...res.headers].map(([k, v]) => `${k}: ${v}`).join('\n')}\n\n${text}` });
    expect(res.status, `${where}: POST ${p} ${text.slice(0, 300)}`).toBe(status);
    return { res, text };
  }
  let bearer = '';
  async function api<T = Record<string, unknown>>(
    where: string,
    method: string,
    p: string,
    body: unknown,
    status: number,
    key = bearer,
  ): Promise<T> {
    const res = await fetch(`${app.url}${p}`, {
      method,
      headers: {
        authorization: `Bearer ${key}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await res.text();
    responses.push({ where, text: `${[...res.headers].map(([k, v]) => `${k}: ${v}`).join('\n')}\n\n${text}` });
    expect(res.status, `${where}: ${method} ${p} ${text.slice(0, 300)}`).toBe(status);
    return (res.headers.get('content-type')?.includes('json') ? JSON.parse(text) : {}) as T;
  }

  // --- the first admin: a wrong password first (a failed login must not log what was typed), then the right one.
  const typo = add('mistyped login password', canary('typo-password'));
  await page('login page', '/login');
  await form('failed login', '/login', { email: adminEmail, password: typo }, 401);
  await admin.login(adminEmail, adminPassword);

  // --- API keys: one from the page (shown once there), then the canary key created through the API with it.
  await form('API key page (creation)', '/admin/api-keys', { name: 'bootstrap', scopes: ['admin', 'send'] }, 303);
  // Post/redirect/get: the page after the redirect shows the new key, once.
  const created = await page('API key page (after creation)', '/admin/api-keys');
  const pageKey = add(
    'API key created on the page',
    /id="new-api-key"[^>]*value="(mgk_[^"]+)"/.exec(created)![1]!,
    'API key page (after creation)',
  );
  const made = await api<{ id: string; key: string }>(
    'API key creation',
    'POST',
    '/api/v1/api-keys',
    { name: 'canary key', scopes: ['admin', 'send'] },
    201,
    pageKey,
  );
  bearer = add('API key created through the API', made.key, 'API key creation');

  // --- OAuth 2.0 integration (API), plus a form post with a bad field that must not echo its secret.
  const clientId = `mailgate-${randomBytes(4).toString('hex')}`;
  const clientSecret1 = add('client secret', canary('client-secret'));
  await provider.registerClient({
    clientId,
    clientSecret: clientSecret1,
    redirectUris: [`${app.config.MAILGATE_BASE_URL}/oauth/callback`],
  });
  const integration = await api<{ id: string }>(
    'integration creation',
    'POST',
    '/api/v1/oauth-integrations',
    { name: 'Google', provider: 'google', clientId, clientSecret: clientSecret1 },
    201,
  );
  const rejectedSecret = add('client secret of a rejected form', canary('rejected-client-secret'));
  await form(
    'integration form with an error',
    '/admin/oauth-integrations',
    { name: '', provider: 'google', clientId: 'x', clientSecret: rejectedSecret },
    400,
  );

  // --- SMTP server with basic auth over the JSON API, password changed through the HTML form.
  const relayPassword1 = add('SMTP password (API)', canary('smtp-password-api'));
  const relayServer = await api<{ id: string }>(
    'server creation',
    'POST',
    '/api/v1/smtp-servers',
    {
      name: 'relay',
      fromAddress: 'notify@example.test',
      host: '127.0.0.1',
      port: relay.port,
      protocol: 'smtp',
      authMethod: 'basic',
      username: relayAuth.user,
      password: relayPassword1,
      timeoutMs: 5000,
    },
    201,
  );
  relayAuth.pass = relayPassword1;
  await page('server page', `/admin/smtp-servers/${relayServer.id}`);
  const relayPassword2 = add('SMTP password (form, changePassword)', canary('smtp-password-form'));
  const serverFields = {
    name: 'relay',
    fromAddress: 'notify@example.test',
    protocol: 'smtp',
    host: '127.0.0.1',
    port: String(relay.port),
    timeoutMs: '5000',
    authMethod: 'basic',
    username: relayAuth.user,
  };
  await form(
    'server form (changePassword)',
    `/admin/smtp-servers/${relayServer.id}`,
    { ...serverFields, password: relayPassword2, changePassword: 'on' },
    303,
  );
  relayAuth.pass = relayPassword2;
  const unticked = add('SMTP password typed without changePassword', canary('smtp-password-unticked'));
  await form(
    'server form (password without changePassword)',
    `/admin/smtp-servers/${relayServer.id}`,
    { ...serverFields, password: unticked },
    400,
  );
  const invalidPassword = add('SMTP password of a rejected form', canary('smtp-password-rejected'));
  await form(
    'server form with an error',
    `/admin/smtp-servers/${relayServer.id}`,
    { ...serverFields, port: 'not-a-port', password: invalidPassword, changePassword: 'on' },
    400,
  );

  // --- a second basic-auth server created through the HTML form; its relay speaks AUTH LOGIN only.
  const loginPassword = add('SMTP password (create form)', canary('smtp-password-login'));
  loginAuth.pass = loginPassword;
  const createdByForm = await form(
    'server create form',
    '/admin/smtp-servers',
    {
      name: 'login relay',
      fromAddress: 'notify@example.test',
      serviceProvider: 'custom',
      protocol: 'smtp',
      host: '127.0.0.1',
      port: String(loginRelay.port),
      timeoutMs: '5000',
      authMethod: 'basic',
      username: loginAuth.user,
      password: loginPassword,
    },
    303,
  );
  const loginServer = decodeURIComponent(
    /\/admin\/smtp-servers\/([^/?]+)$/.exec(createdByForm.res.headers.get('location') ?? '')![1]!,
  );

  // --- Test connection with the debug transcript: HTML (AUTH PLAIN) and API (AUTH LOGIN).
  // Post/redirect/get: the post answers 303, the server page shows the result (and its transcript) once.
  await form('Test connection (PLAIN)', `/admin/smtp-servers/${relayServer.id}/test`, {}, 303);
  const testPage = await page('Test connection page (PLAIN)', `/admin/smtp-servers/${relayServer.id}`);
  expect(testPage).toContain('AUTH PLAIN');
  expect(testPage).toContain('authenticated (basic)');
  const loginTest = await api<{ ok: boolean; transcript: string[] }>(
    'Test connection API (LOGIN)',
    'POST',
    `/api/v1/smtp-servers/${loginServer}/test`,
    undefined,
    200,
  );
  expect(loginTest.ok, loginTest.transcript.join('\n')).toBe(true);
  expect(loginTest.transcript.join('\n')).toContain('AUTH LOGIN');

  const fileTest = await api<{ ok: boolean; transcript: string[] }>(
    'Test connection API (file-defined server)',
    'POST',
    '/api/v1/smtp-servers/file-relay/test',
    undefined,
    200,
  );
  expect(fileTest.ok, fileTest.transcript.join('\n')).toBe(true);

  // --- messages through the queue over basic auth.
  const sentBasic = [
    await api<{ id: string }>(
      'message (file-defined server)',
      'POST',
      '/api/v1/messages',
      { serverId: 'file-relay', to: 'bob@example.test', subject: 'file', text: 'hello' },
      202,
    ),
    await api<{ id: string }>(
      'message (PLAIN)',
      'POST',
      '/api/v1/messages',
      { serverId: relayServer.id, to: 'bob@example.test', subject: 'plain', text: 'hello' },
      202,
    ),
    await api<{ id: string }>(
      'message (LOGIN)',
      'POST',
      '/api/v1/messages',
      { serverId: loginServer, to: 'bob@example.test', subject: 'login', text: 'hello' },
      202,
    ),
  ];

  // --- OAuth 2.0 server, Authorize through the provider (PKCE verifier, code, access and refresh tokens).
  const oauthServer = await api<{ id: string }>(
    'OAuth server creation',
    'POST',
    '/api/v1/smtp-servers',
    {
      name: 'google mailbox',
      fromAddress: 'alice@example.test',
      host: '127.0.0.1',
      port: oauthSmtp.port,
      protocol: 'smtp',
      authMethod: 'oauth2',
      oauthIntegrationId: integration.id,
      timeoutMs: 5000,
    },
    201,
  );
  const authorize = await pressAuthorize(admin, oauthServer.id);
  responses.push({ where: 'Authorize page', text: authorize.page });
  const transactions = await app.store.list<{ codeVerifier: string }>(TRANSACTIONS);
  expect(transactions.length).toBe(1);
  const tx = transactions[0]!;
  expect(isSealed(tx.value.codeVerifier), 'the PKCE verifier is sealed').toBe(true);
  add(
    'PKCE code verifier',
    app.services.keyring.open(tx.value.codeVerifier, { collection: TRANSACTIONS, id: tx.id, field: 'codeVerifier' }),
  );
  const callback = await consentAtProvider(authorize.url, 'alice@example.test');
  add('authorization code', callback.searchParams.get('code')!);
  const back = await admin.get(`${callback.pathname}${callback.search}`);
  responses.push({
    where: 'OAuth callback',
    text: `${[...back.res.headers].map(([k, v]) => `${k}: ${v}`).join('\n')}\n\n${back.text}`,
  });
  expect(back.res.status, back.text.slice(0, 300)).toBe(303);

  const rememberGrant = async (when: string) => {
    const g = (await rawDoc(app, dataDir, GRANTS, oauthServer.id)) as unknown as GrantRecord;
    expect(isSealed(g.tokens.accessToken), `access token sealed ${when}`).toBe(true);
    expect(isSealed(g.tokens.refreshToken), `refresh token sealed ${when}`).toBe(true);
    add(`access token (${when})`, openToken(app.services.keyring, oauthServer.id, 'accessToken', g.tokens.accessToken));
    add(
      `refresh token (${when})`,
      openToken(app.services.keyring, oauthServer.id, 'refreshToken', g.tokens.refreshToken!),
    );
  };
  await rememberGrant('after Authorize');
  await page('OAuth server page', `/admin/smtp-servers/${oauthServer.id}`);
  await api('grant API', 'GET', `/api/v1/smtp-servers/${oauthServer.id}/oauth`, undefined, 200);

  // --- XOAUTH2: Test connection (HTML transcript) and a queued message.
  await form('Test connection (XOAUTH2)', `/admin/smtp-servers/${oauthServer.id}/test`, {}, 303);
  const xoauthTest = await page('Test connection page (XOAUTH2)', `/admin/smtp-servers/${oauthServer.id}`);
  expect(xoauthTest).toContain('AUTH XOAUTH2');
  expect(xoauthTest).toContain('authenticated (oauth2)');
  const waitSent = async (id: string) => {
    const deadline = Date.now() + 15_000;
    for (;;) {
      const status = (await api<{ status: string }>('message status', 'GET', `/api/v1/messages/${id}`, undefined, 200))
        .status;
      if (status === 'sent') return;
      if (Date.now() > deadline || status === 'failed') throw new Error(`message ${id} is ${status}`);
      await sleep(50);
    }
  };
  const sentOAuth = [
    await api<{ id: string }>(
      'message (XOAUTH2)',
      'POST',
      '/api/v1/messages',
      { serverId: oauthServer.id, to: 'bob@example.test', subject: 'oauth', text: 'hello' },
      202,
    ),
  ];
  // Sent with the first access token before the rotation below brings a second one.
  await waitSent(sentOAuth[0]!.id);

  // --- client secret rotation: a wrong secret through the form (refused), then the real one through the API
  // (proven with a refresh, which stores a new access token).
  const wrongSecret = add('wrong rotated client secret', canary('wrong-client-secret'));
  await form(
    'rotate-secret form (refused)',
    `/admin/oauth-integrations/${integration.id}/rotate-secret`,
    { clientSecret: wrongSecret },
    400,
  );
  const clientSecret2 = add('rotated client secret', canary('rotated-client-secret'));
  await provider.changeClientSecret(clientId, clientSecret2);
  const rotated = await api<{ provenWith: string }>(
    'rotate-secret API',
    'POST',
    `/api/v1/oauth-integrations/${integration.id}/rotate-secret`,
    { clientSecret: clientSecret2 },
    200,
  );
  expect(rotated.provenWith).toBe('refresh_token');
  await rememberGrant('after rotation');
  oauthSmtp.dropConnections();
  sentOAuth.push(
    await api<{ id: string }>(
      'message (XOAUTH2, after rotation)',
      'POST',
      '/api/v1/messages',
      { serverId: oauthServer.id, to: 'bob@example.test', subject: 'oauth 2', text: 'hello' },
      202,
    ),
  );

  for (const m of [...sentBasic, ...sentOAuth]) await waitSent(m.id);
  expect(relay.messages.length).toBe(1);
  expect(loginRelay.messages.length).toBe(1);
  expect(fileRelay.messages.length).toBe(1);
  expect(oauthSmtp.messages.length).toBe(2);
  for (const t of seenAccessTokens) add('access token presented over XOAUTH2', t);
  expect(seenAccessTokens.size).toBeGreaterThanOrEqual(2);

  // --- every page and API answer that shows these records.
  for (const [where, p] of [
    ['server list', '/admin/smtp-servers'],
    ['relay page', `/admin/smtp-servers/${relayServer.id}`],
    ['login relay page', `/admin/smtp-servers/${loginServer}`],
    ['file-defined server page', '/admin/smtp-servers/file-relay'],
    ['OAuth server page (after sends)', `/admin/smtp-servers/${oauthServer.id}`],
    ['integration list', '/admin/oauth-integrations'],
    ['integration page', `/admin/oauth-integrations/${integration.id}`],
    ['audit page', '/admin/audit?limit=200'],
    ['API key list page', '/admin/api-keys'],
    ['mail queue page', '/admin/mail-queue'],
  ] as const)
    await page(where, p);
  for (const [where, p] of [
    ['server list API', '/api/v1/smtp-servers'],
    ['relay API', `/api/v1/smtp-servers/${relayServer.id}`],
    ['login relay API', `/api/v1/smtp-servers/${loginServer}`],
    ['file-defined server API', '/api/v1/smtp-servers/file-relay'],
    ['OAuth server API', `/api/v1/smtp-servers/${oauthServer.id}`],
    ['integration list API', '/api/v1/oauth-integrations'],
    ['integration API', `/api/v1/oauth-integrations/${integration.id}`],
    ['audit API', '/api/v1/audit?limit=200'],
    ['API key list API', '/api/v1/api-keys'],
    ['encryption keys API', '/api/v1/encryption-keys'],
    ['readiness', '/readyz'],
    ['health', '/healthz'],
    ['metrics', '/metrics'],
  ] as const)
    await api(where, 'GET', p, undefined, 200);

  await rememberGrant('before Disconnect');
  const atRestBeforeDisconnect = await readAtRest(app, dataDir);

  // --- Disconnect: local tokens deleted, refresh token revoked at the provider.
  const refreshTokens = secrets.filter((s) => s.label.startsWith('refresh token')).map((s) => s.value);
  const disconnected = await api<{ revokedAtProvider: boolean; localTokensDeleted: boolean }>(
    'Disconnect API',
    'POST',
    `/api/v1/smtp-servers/${oauthServer.id}/disconnect`,
    undefined,
    200,
  );
  expect(disconnected).toMatchObject({ revokedAtProvider: true, localTokensDeleted: true });
  expect(await app.store.get(GRANTS, oauthServer.id)).toBeNull();
  for (const t of refreshTokens) expect((await provider.introspect(t)).active).toBe(false);
  await page('OAuth server page (after Disconnect)', `/admin/smtp-servers/${oauthServer.id}`);
  await page('audit page (after Disconnect)', '/admin/audit?limit=200');

  return {
    app,
    dataDir,
    secrets,
    responses,
    logLines,
    atRestBeforeDisconnect,
    ids: {
      relayServer: relayServer.id,
      loginServer,
      oauthServer: oauthServer.id,
      integration: integration.id,
      adminEmail,
      sendKeyId: made.id,
    },
    final: { relayPassword: relayPassword2, loginPassword, clientSecret: clientSecret2 },
    startedAt,
  };
}

describe('the canary search', () => {
  it('finds a canary inside AUTH PLAIN, AUTH LOGIN and XOAUTH2 base64 at any alignment, and nothing else', () => {
    for (const user of ['u', 'us', 'use', 'relay-user']) {
      const secret = canary('self-check');
      const blobs = [
        Buffer.from(`\0${user}\0${secret}`).toString('base64'),
        Buffer.from(secret).toString('base64'),
        Buffer.from(`user=${user}@example.test\x01auth=Bearer ${secret}\x01\x01`).toString('base64url'),
      ];
      for (const blob of blobs)
        expect(leaks([{ where: 'blob', text: `C: AUTH PLAIN ${blob}` }], [{ label: 'x', value: secret }])).toEqual([
          'x (base64) in blob',
        ]);
      expect(leaks([{ where: 'blob', text: blobs.join(' ') }], [{ label: 'x', value: canary('other') }])).toEqual([]);
    }
  });
});

const stores = [
  { kind: 'file' as const, skip: false },
  { kind: 'redis' as const, skip: !redisUrlForTests() },
];

for (const { kind, skip } of stores) {
  describe.skipIf(skip)(`secrets at rest, in logs and in responses (${kind} store)`, () => {
    let provider: FakeProvider;
    let relay: TestSmtp;
    let loginRelay: TestSmtp;
    let oauthSmtp: OAuthSmtp;
    let fileRelay: TestSmtp;
    const fileRelayAuth = { user: 'file-user', pass: canary('smtp-password-file') };
    // The relays read these on every AUTH: the scenario sets the passwords it makes up.
    const relayAuth = { user: 'relay-user', pass: 'set-later' };
    const loginAuth = { user: 'login-user', pass: 'set-later' };
    const seenAccessTokens = new Set<string>();
    let s: Scenario;
    let atRest: Haystack[] = [];
    const cleanup: Fixtures['cleanup'] = { apps: [], dirs: [] };

    beforeAll(async () => {
      provider = await startFakeProvider({ kind: 'google', accessTokenTtlSec: 60 });
      // The XOAUTH2 relay checks every token at the provider; the test keeps each token it was shown.
      const introspect = provider.introspect.bind(provider);
      provider.introspect = async (token) => {
        seenAccessTokens.add(token);
        return introspect(token);
      };
      relay = await startTestSmtp({
        starttls: false,
        allowInsecureAuth: true,
        auth: relayAuth,
        authMethods: ['PLAIN'],
      });
      loginRelay = await startTestSmtp({
        starttls: false,
        allowInsecureAuth: true,
        auth: loginAuth,
        authMethods: ['LOGIN'],
      });
      oauthSmtp = await startOAuthSmtp(provider);
      fileRelay = await startTestSmtp({
        starttls: false,
        allowInsecureAuth: true,
        auth: fileRelayAuth,
        authMethods: ['PLAIN'],
      });
      s = await runScenario(kind, {
        provider,
        relay,
        relayAuth,
        loginRelay,
        loginAuth,
        fileRelay,
        fileRelayAuth,
        oauthSmtp,
        seenAccessTokens,
        cleanup,
      });
    }, 60_000);

    afterAll(async () => {
      for (const app of cleanup.apps) await app.close();
      await oauthSmtp?.close();
      await relay?.close();
      await loginRelay?.close();
      await fileRelay?.close();
      await provider?.close();
      for (const dir of cleanup.dirs) await rm(dir, { recursive: true, force: true });
    });

    it('every kept secret is sealed where it belongs (the store did not just stop keeping it)', async () => {
      const { app, ids, final } = s;
      const keyring = app.services.keyring;
      const raw = (collection: string, id: string) => rawDoc(app, s.dataDir, collection, id);
      for (const [id, password] of [
        [ids.relayServer, final.relayPassword],
        [ids.loginServer, final.loginPassword],
      ] as const) {
        const doc = await raw(SERVERS, id);
        expect(isSealed(doc.password), `${SERVERS}/${id} password sealed`).toBe(true);
        expect(keyring.open(doc.password as string, { collection: SERVERS, id, field: 'password' })).toBe(password);
      }
      const integration = await raw(INTEGRATIONS, ids.integration);
      expect(isSealed(integration.clientSecret)).toBe(true);
      expect(
        keyring.open(integration.clientSecret as string, {
          collection: INTEGRATIONS,
          id: ids.integration,
          field: 'clientSecret',
        }),
      ).toBe(final.clientSecret);
      // Login secrets are kept as one-way hashes.
      const user = (await app.store.list<{ email: string; passwordHash: string }>(USERS)).find(
        (u) => u.value.email === ids.adminEmail,
      );
      expect(user?.value.passwordHash).toMatch(/scrypt|argon/i);
      const key = await raw(API_KEYS, ids.sendKeyId);
      expect(key.hash).toMatch(/^[A-Za-z0-9_+/=-]{40,}$/);
    });

    it('no canary, plain or base64, in any file of the data folder or any key under the Redis prefix (sessions included)', async () => {
      // Closed first: everything buffered is written, and what stays is what a stopped instance leaves behind.
      await s.app.close();
      atRest = await readAtRest(s.app, s.dataDir);
      if (kind === 'file')
        expect(atRest.some((h) => h.where.startsWith(path.join('store', 'docs', SERVERS)))).toBe(true);
      else {
        expect(
          atRest.some((h) => h.where.includes(':sess:')),
          'connect-redis session keys were read',
        ).toBe(true);
        expect(atRest.some((h) => h.where.includes(`:d:${SERVERS}:`))).toBe(true);
      }
      expect(atRest.length).toBeGreaterThan(10);
      expect(leaks(atRest, s.secrets)).toEqual([]);
    });

    it('while the mailbox was authorized, its tokens were kept sealed only (no plaintext, no base64)', () => {
      const before = s.atRestBeforeDisconnect;
      expect(before.some((h) => h.where.includes(GRANTS))).toBe(true);
      expect(leaks(before, s.secrets)).toEqual([]);
    });

    it('no canary in any log line (trace level, SMTP debug on)', () => {
      const log = s.logLines;
      expect(log.length).toBeGreaterThan(20);
      // The protocol log really ran, including each AUTH exchange.
      for (const mech of ['AUTH PLAIN', 'AUTH LOGIN', 'AUTH XOAUTH2'])
        expect(
          log.some((l) => l.includes('"component":"smtp"') && l.includes(mech)),
          mech,
        ).toBe(true);
      expect(
        leaks(
          log.map((text, i) => ({ where: `log line ${i + 1}: ${text.slice(0, 160)}`, text })),
          s.secrets,
        ),
      ).toEqual([]);
    });

    it('no write-only secret in any HTTP response (pages, API answers, Test connection transcripts)', () => {
      expect(s.responses.length).toBeGreaterThan(40);
      expect(leaks(s.responses, s.secrets)).toEqual([]);
    });

    // Only the embedded store has a data folder; Redis has no files to check.
    if (kind === 'file')
      it('data folder 0700, secrets.json 0600, every file private, no temp file left', async () => {
        const dir = s.dataDir!;
        expect((await stat(dir)).mode & 0o777).toBe(0o700);
        expect((await stat(path.join(dir, LOCAL_SECRETS_FILE))).mode & 0o777).toBe(0o600);
        const problems: string[] = [];
        for (const f of await walk(dir)) {
          const st = await stat(f);
          const mode = st.mode & 0o777;
          const name = path.basename(f);
          if (st.isDirectory() && mode !== 0o700)
            problems.push(`folder ${path.relative(dir, f)} is ${mode.toString(8)}`);
          if (st.isFile() && (mode & 0o077) !== 0)
            problems.push(`file ${path.relative(dir, f)} is ${mode.toString(8)}`);
          if (st.isFile() && (name.endsWith('.tmp') || name.startsWith('.')))
            problems.push(`leftover ${path.relative(dir, f)}`);
        }
        expect(problems).toEqual([]);
      });

    it('no file written to the temp folder during the run holds a canary', async () => {
      const hits: Haystack[] = [];
      const visit = async (d: string, depth: number): Promise<void> => {
        let entries;
        try {
          entries = await readdir(d, { withFileTypes: true });
        } catch {
          return;
        }
        for (const e of entries) {
          const full = path.join(d, e.name);
          // The data folder is searched above; the configuration folder holds the file-defined server's password on purpose.
          if (cleanup.dirs.includes(full)) continue;
          try {
            const st = await stat(full);
            if (st.mtimeMs < s.startedAt - 1000) continue;
            if (e.isDirectory() && depth < 4) await visit(full, depth + 1);
            else if (e.isFile() && st.size < 4 * 1024 * 1024)
              hits.push({ where: full, text: await readFile(full, 'latin1') });
          } catch {
            // Files of other tests come and go.
          }
        }
      };
      await visit(os.tmpdir(), 0);
      expect(leaks(hits, s.secrets)).toEqual([]);
    });
  });
}
