import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../../src/app.js';
import { MAIL_QUEUE } from '../../src/mail/queue/model.js';
import { HttpSession, startTestApp, type TestApp } from '../fakes/app.js';
import { consentAtProvider } from '../fakes/oauth-flow.js';
import { redisUrlForTests } from '../fakes/redis.js';
import { providerEnv } from '../fakes/oauth-setup.js';
import { startFakeProvider, type FakeProvider } from '../fakes/oidc-provider.js';
import { closedPort, startTestSmtp, type TestSmtp } from '../fakes/smtp-server.js';

// The names DESIGN.md fixes (routes, fields, buttons, statuses, variables), one test per clause, through the
// real HTTP surface of a real mailgate (file store, workers on) and a real smtp-server on loopback. Other programs
// drive mailgate through exactly these names, so each assertion spells them out instead of reusing src/ constants.

const BASE_URL = 'http://mailgate.example.test:8080';
const RELAY_PASSWORD = 'relay-secret-Pa55word';
const CLIENT_SECRET = 'client-secret-do-not-leak-0123456789';
const API_KEY_SHAPE = /^mgk_[A-Za-z0-9_-]{43}$/;
const MESSAGE_STATUSES = ['queued', 'sending', 'sent', 'deferred', 'held', 'failed'];

let app: TestApp;
let smtp: TestSmtp;
let provider: FakeProvider;
let adminKey: string;
let sendKey: string;
let sysadmin: HttpSession;
let admin: HttpSession;
let relayId: string;

interface ApiAnswer {
  status: number;
  body: Record<string, unknown>;
  text: string;
  headers: Headers;
}

async function api(
  method: string,
  path: string,
  key: string | null,
  body?: unknown,
  headers: Record<string, string> = {},
  on: TestApp = app,
): Promise<ApiAnswer> {
  const res = await fetch(`${on.url}${path}`, {
    method,
    headers: {
      ...(key ? { authorization: `Bearer ${key}` } : {}),
      ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
      ...headers,
    },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  return {
    status: res.status,
    body: text ? (JSON.parse(text) as Record<string, unknown>) : {},
    text,
    headers: res.headers,
  };
}

/** The error shape of DESIGN.md, exactly: `{"error": {"code", "message", "details": [...]}}` and nothing else. */
function expectError(r: ApiAnswer, status: number, code: string, field?: string): void {
  expect(r.status, r.text).toBe(status);
  expect(Object.keys(r.body)).toEqual(['error']);
  const error = r.body.error as Record<string, unknown>;
  expect(Object.keys(error).sort()).toEqual(['code', 'details', 'message']);
  expect(error.code).toBe(code);
  expect(typeof error.message).toBe('string');
  expect(Array.isArray(error.details)).toBe(true);
  if (field !== undefined) expect((error.details as { field: string }[]).map((d) => d.field)).toContain(field);
}

/** A route exists when it is guarded (403 for a key without the scope) rather than answered by the 404 fallback. */
async function expectAdminRoute(method: string, path: string): Promise<void> {
  const r = await api(method, path, sendKey, method === 'GET' || method === 'DELETE' ? undefined : {});
  expectError(r, 403, 'insufficient_scope');
}

async function waitForStatus(
  id: string,
  status: string,
  timeoutMs = 10_000,
  on: TestApp = app,
  key = sendKey,
): Promise<Record<string, unknown>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const r = await api('GET', `/api/v1/messages/${id}`, key, undefined, {}, on);
    if (r.body.status === status) return r.body;
    if (Date.now() > deadline)
      throw new Error(`message ${id} is ${String(r.body.status)}, expected ${status}: ${r.text}`);
    await new Promise((resolve) => setTimeout(resolve, 40));
  }
}

// ------------------------------------------------------------------------------------------ HTML helpers

/** The <form> element whose action is exactly `action`. */
/**
 * Whether a message has a place in the delivery schedule. A held message has none: no worker ever claims it, so
 * it stays held however long one waits, which is what this checks instead of waiting.
 */
async function inDeliverySchedule(on: TestApp, id: string): Promise<boolean> {
  return (await on.store.scheduled(MAIL_QUEUE, { limit: 100_000 })).some((e) => e.id === id);
}

function formWithAction(html: string, action: string): string {
  const start = html.indexOf(`action="${action}"`);
  if (start < 0) throw new Error(`no form with action ${action}`);
  const open = html.lastIndexOf('<form', start);
  const end = html.indexOf('</form>', start);
  return html.slice(open, end + '</form>'.length);
}

function fieldNames(html: string): Set<string> {
  return new Set([...html.matchAll(/<(?:input|select|textarea)\b[^>]*\bname="([^"]+)"/g)].map((m) => m[1]!));
}

function selectOptions(html: string, name: string): string[] {
  const m = new RegExp(`<select\\b[^>]*\\bname="${name}"[^>]*>([\\s\\S]*?)</select>`).exec(html);
  if (!m) throw new Error(`no select named ${name}`);
  return [...m[1]!.matchAll(/<option\b[^>]*\bvalue="([^"]*)"/g)].map((o) => o[1]!);
}

function checkboxValues(html: string, name: string): string[] {
  return [...html.matchAll(/<input\b[^>]*>/g)]
    .map((m) => m[0])
    .filter((tag) => /type="checkbox"/.test(tag) && tag.includes(`name="${name}"`))
    .map((tag) => /value="([^"]*)"/.exec(tag)?.[1] ?? 'on');
}

/** The visible text of every <button>. */
function buttonTexts(html: string): string[] {
  return [...html.matchAll(/<button\b[^>]*>([\s\S]*?)<\/button>/g)].map((m) => m[1]!.replace(/<[^>]+>/g, '').trim());
}

interface RouteLayer {
  route?: { path: string; methods: Record<string, boolean> };
  handle?: { stack?: RouteLayer[] };
}

/** Every [METHOD, path] the app answers, read from a real Express app built from the same services. */
function routesOf(on: TestApp): [string, string][] {
  const routes: [string, string][] = [];
  const walk = (stack: RouteLayer[]) => {
    for (const layer of stack) {
      if (layer.route)
        for (const method of Object.keys(layer.route.methods)) routes.push([method.toUpperCase(), layer.route.path]);
      else if (layer.handle?.stack) walk(layer.handle.stack);
    }
  };
  walk((createApp(on.services) as unknown as { router: { stack: RouteLayer[] } }).router.stack);
  return routes;
}

function unescapeHtml(s: string): string {
  return s
    .replace(/&#39;/g, "'")
    .replace(/&quot;/g, '"')
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&amp;/g, '&');
}

// ------------------------------------------------------------------------------------------ setup

beforeAll(async () => {
  smtp = await startTestSmtp({
    starttls: false,
    allowInsecureAuth: true,
    auth: { user: 'relay', pass: RELAY_PASSWORD },
    onRcptTo: (address) => {
      if (address.startsWith('gone@')) return { code: 550, message: '5.1.1 <gone@example.net>: no such user' };
      if (address.startsWith('busy@')) return { code: 451, message: '4.3.0 mailbox busy, try again later' };
      return undefined;
    },
  });
  // The Google preset points at a local OpenID provider (MAILGATE_GOOGLE_ISSUER).
  provider = await startFakeProvider({ kind: 'google' });
  // A long retry base keeps a deferred message deferred while the test reads it.
  app = await startTestApp({
    workers: true,
    env: { ...providerEnv(provider), MAILGATE_BASE_URL: BASE_URL, MAILGATE_QUEUE_RETRY_BASE_MS: '600000' },
  });
  [adminKey, sendKey, sysadmin, admin] = await Promise.all([
    app.apiKey(['admin']),
    app.apiKey(['send']),
    app.browserSession('sysadmin'),
    app.browserSession('admin'),
  ]);
  const created = await api('POST', '/api/v1/smtp-servers', adminKey, {
    name: 'Loopback relay',
    fromAddress: 'notify@example.com',
    emailPrefix: '[mailgate]',
    host: '127.0.0.1',
    port: smtp.port,
    authMethod: 'basic',
    username: 'relay',
    password: RELAY_PASSWORD,
    isDefault: true,
  });
  expect(created.status, created.text).toBe(201);
  relayId = created.body.id as string;
}, 30_000);

afterAll(async () => {
  await app?.close();
  await smtp?.close();
  await provider?.close();
});

// ------------------------------------------------------------------------------------------ clauses

describe('HTTP surface: health, readiness, metrics', () => {
  it('GET /healthz answers 200 (process up)', async () => {
    const r = await fetch(`${app.url}/healthz`);
    expect(r.status).toBe(200);
  });

  it('GET /readyz answers 200 while the store is reachable', async () => {
    const r = await fetch(`${app.url}/readyz`);
    expect(r.status).toBe(200);
  });

  it('GET /metrics answers Prometheus text exposition', async () => {
    const r = await fetch(`${app.url}/metrics`);
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = await r.text();
    expect(text).toMatch(/^# HELP \w+ /m);
    expect(text).toMatch(/^# TYPE \w+ (counter|gauge|histogram|summary)$/m);
  });
});

describe('HTTP surface: /login and /logout', () => {
  it('/login has a form with inputs named email and password', async () => {
    const page = await app.anonymousSession().get('/login');
    expect(page.res.status).toBe(200);
    const names = fieldNames(formWithAction(page.text, '/login'));
    expect(names).toContain('email');
    expect(names).toContain('password');
  });

  it('/logout ends the session', async () => {
    const session = await app.browserSession('admin');
    expect((await session.get('/admin/audit')).res.status).toBe(200);
    const out = await session.postForm('/logout');
    expect(out.res.status).toBe(303);
    expect(out.res.headers.get('location')).toBe('/login');
    const after = await session.get('/admin/audit');
    expect(after.res.status).toBe(303);
    expect(after.res.headers.get('location')).toMatch(/^\/login/);
  });
});

describe('HTTP surface: admin pages exist', () => {
  it.each([
    '/admin/smtp-servers',
    '/admin/smtp-servers/new',
    '/admin/api-keys',
    '/admin/oauth-integrations',
    '/admin/oauth-integrations/new',
    '/admin/mail-queue',
    '/admin/audit',
  ])('GET %s answers 200 to a sysadmin and sends an anonymous visitor to /login', async (path) => {
    expect((await sysadmin.get(path)).res.status).toBe(200);
    const anonymous = await app.anonymousSession().get(path);
    expect(anonymous.res.status).toBe(303);
    expect(anonymous.res.headers.get('location')).toMatch(/^\/login/);
  });

  it('GET /admin/smtp-servers/:id answers 200 for a server', async () => {
    expect((await sysadmin.get(`/admin/smtp-servers/${relayId}`)).res.status).toBe(200);
  });

  it('GET /oauth/callback exists: a bad state gets an answer other than 404', async () => {
    const r = await sysadmin.get('/oauth/callback?state=not-a-transaction&code=abc');
    expect(r.res.status).not.toBe(404);
    expect(r.res.status).toBeGreaterThanOrEqual(400);
    expect(r.res.status).toBeLessThan(500);
  });
});

describe('SMTP server form: input names equal the JSON field names', () => {
  const DESIGN_FIELDS = [
    'name',
    'description',
    'fromAddress',
    'emailPrefix',
    'protocol',
    'host',
    'port',
    'timeoutMs',
    'tls',
    'authMethod',
    'oauthIntegrationId',
    'username',
    'password',
  ];

  it('/admin/smtp-servers/new: every field, serviceProvider (custom, gmail, yahoo, microsoft), submit button Add, no changePassword', async () => {
    const page = await sysadmin.get('/admin/smtp-servers/new');
    const form = formWithAction(page.text, '/admin/smtp-servers');
    const names = fieldNames(form);
    for (const f of [...DESIGN_FIELDS, 'serviceProvider']) expect(names, f).toContain(f);
    expect(names).not.toContain('changePassword');
    expect(selectOptions(form, 'serviceProvider')).toEqual(['custom', 'gmail', 'yahoo', 'microsoft']);
    expect(selectOptions(form, 'protocol')).toEqual(['smtp', 'smtps', 'graph', 'gmail_api']);
    expect(selectOptions(form, 'authMethod')).toEqual(['none', 'basic', 'oauth2']);
    expect(buttonTexts(form)).toContain('Add');
    expect(buttonTexts(form)).not.toContain('Update');
  });

  it('/admin/smtp-servers/:id: every field, changePassword, no serviceProvider, submit button Update, button Test connection', async () => {
    const page = await sysadmin.get(`/admin/smtp-servers/${relayId}`);
    const form = formWithAction(page.text, `/admin/smtp-servers/${relayId}`);
    const names = fieldNames(form);
    for (const f of [...DESIGN_FIELDS, 'changePassword']) expect(names, f).toContain(f);
    expect(names).not.toContain('serviceProvider');
    expect(buttonTexts(form)).toContain('Update');
    expect(buttonTexts(form)).not.toContain('Add');
    expect(buttonTexts(page.text)).toContain('Test connection');
    expect(page.text).not.toContain(RELAY_PASSWORD);
  });

  it('the form posts with the JSON names: Add creates, Update edits, the password changes only with changePassword', async () => {
    const add = await sysadmin.postForm('/admin/smtp-servers', {
      name: 'Form server',
      description: 'made by the form',
      fromAddress: 'form@example.com',
      emailPrefix: '[form]',
      serviceProvider: 'custom',
      protocol: 'smtp',
      host: '127.0.0.1',
      port: String(smtp.port),
      timeoutMs: '',
      authMethod: 'basic',
      oauthIntegrationId: '',
      username: 'relay',
      password: RELAY_PASSWORD,
    });
    expect(add.res.status, add.text).toBe(303);
    const id = /^\/admin\/smtp-servers\/([A-Za-z0-9_-]+)$/.exec(add.res.headers.get('location') ?? '')?.[1];
    expect(id).toBeTruthy();
    const json = await api('GET', `/api/v1/smtp-servers/${id}`, adminKey);
    expect(json.body).toMatchObject({
      id,
      name: 'Form server',
      description: 'made by the form',
      fromAddress: 'form@example.com',
      emailPrefix: '[form]',
      protocol: 'smtp',
      host: '127.0.0.1',
      port: smtp.port,
      timeoutMs: null,
      tls: false,
      authMethod: 'basic',
      username: 'relay',
    });
    const sealedBefore = (await app.store.get<{ password: string }>('smtp_servers', id!))?.value.password;

    await sysadmin.get(`/admin/smtp-servers/${id}`);
    const update = await sysadmin.postForm(`/admin/smtp-servers/${id}`, {
      name: 'Form server renamed',
      description: '',
      fromAddress: 'form@example.com',
      emailPrefix: '',
      protocol: 'smtp',
      host: '127.0.0.1',
      port: String(smtp.port),
      timeoutMs: '5000',
      authMethod: 'basic',
      oauthIntegrationId: '',
      username: 'relay',
      password: '',
    });
    expect(update.res.status, update.text).toBe(303);
    const after = await api('GET', `/api/v1/smtp-servers/${id}`, adminKey);
    expect(after.body).toMatchObject({ name: 'Form server renamed', timeoutMs: 5000, hasPassword: true });
    expect((await app.store.get<{ password: string }>('smtp_servers', id!))?.value.password).toBe(sealedBefore);
    // A typed password without changePassword never changes the stored one (mailgate refuses the form rather than drop it silently).
    const unticked = await sysadmin.postForm(`/admin/smtp-servers/${id}`, {
      name: 'Form server renamed',
      fromAddress: 'form@example.com',
      host: '127.0.0.1',
      port: String(smtp.port),
      authMethod: 'basic',
      username: 'relay',
      password: 'typed but not ticked',
    });
    expect([303, 400]).toContain(unticked.res.status);
    expect(unticked.text).not.toContain('typed but not ticked');
    expect((await app.store.get<{ password: string }>('smtp_servers', id!))?.value.password).toBe(sealedBefore);

    const changed = await sysadmin.postForm(`/admin/smtp-servers/${id}`, {
      name: 'Form server renamed',
      fromAddress: 'form@example.com',
      protocol: 'smtp',
      host: '127.0.0.1',
      port: String(smtp.port),
      authMethod: 'basic',
      username: 'relay',
      password: 'a new password',
      changePassword: 'on',
    });
    expect(changed.res.status, changed.text).toBe(303);
    expect((await app.store.get<{ password: string }>('smtp_servers', id!))?.value.password).not.toBe(sealedBefore);
    expect((await api('DELETE', `/api/v1/smtp-servers/${id}`, adminKey)).status).toBe(204);
  });

  it('a bad form value answers 400 naming the field, and stores nothing', async () => {
    const before = (await api('GET', '/api/v1/smtp-servers', adminKey)).body.items as unknown[];
    const r = await sysadmin.postForm('/admin/smtp-servers', {
      name: 'Bad port',
      fromAddress: 'x@example.com',
      host: '127.0.0.1',
      port: 'seventy',
      authMethod: 'none',
    });
    expect(r.res.status).toBe(400);
    expect(r.text).toContain('<a href="#port">SMTP port</a>');
    expect((await api('GET', '/api/v1/smtp-servers', adminKey)).body.items).toHaveLength(before.length);
  });

  it('serviceProvider presets fill host/port/protocol/TLS; blank port means 25 for smtp and 465 for smtps; blank timeoutMs means 10000', async () => {
    const gmail = await api('POST', '/api/v1/smtp-servers', adminKey, {
      name: 'Gmail preset',
      fromAddress: 'me@example.com',
      serviceProvider: 'gmail',
      authMethod: 'none',
    });
    expect(gmail.status, gmail.text).toBe(201);
    expect(gmail.body).toMatchObject({
      host: 'smtp.gmail.com',
      protocol: 'smtps',
      effective: { port: 465, timeoutMs: 10000 },
    });
    const plain = await api('POST', '/api/v1/smtp-servers', adminKey, {
      name: 'Plain',
      fromAddress: 'me@example.com',
      protocol: 'smtp',
      host: 'relay.example.net',
    });
    expect(plain.status, plain.text).toBe(201);
    expect(plain.body).toMatchObject({ port: null, effective: { port: 25 } });
    const onUpdate = await api('PATCH', `/api/v1/smtp-servers/${plain.body.id as string}`, adminKey, {
      serviceProvider: 'gmail',
    });
    expectError(onUpdate, 400, 'validation_failed');
    for (const id of [gmail.body.id, plain.body.id])
      await api('DELETE', `/api/v1/smtp-servers/${id as string}`, adminKey);
  });

  it('timeoutMs 0 or negative is accepted (wait forever)', async () => {
    for (const timeoutMs of [0, -1]) {
      const r = await api('POST', '/api/v1/smtp-servers', adminKey, {
        name: `Forever ${timeoutMs}`,
        fromAddress: 'me@example.com',
        host: 'relay.example.net',
        timeoutMs,
      });
      expect(r.status, r.text).toBe(201);
      expect(r.body.timeoutMs).toBe(timeoutMs);
      await api('DELETE', `/api/v1/smtp-servers/${r.body.id as string}`, adminKey);
    }
  });

  it('tls requires STARTTLS: against a server that offers none, Test connection fails instead of going on in plaintext', async () => {
    const r = await api('POST', '/api/v1/smtp-servers', adminKey, {
      name: 'Needs TLS',
      fromAddress: 'me@example.com',
      host: '127.0.0.1',
      port: smtp.port,
      tls: true,
      authMethod: 'basic',
      username: 'relay',
      password: RELAY_PASSWORD,
    });
    expect(r.status, r.text).toBe(201);
    const before = smtp.authAttempts.length;
    const test = await api('POST', `/api/v1/smtp-servers/${r.body.id as string}/test`, adminKey);
    expect(test.body).toMatchObject({ ok: false, error: expect.any(String), hint: expect.any(String) });
    expect(smtp.authAttempts.length).toBe(before);
    await api('DELETE', `/api/v1/smtp-servers/${r.body.id as string}`, adminKey);
  });
});

describe('OAuth 2.0 integrations', () => {
  let googleId: string;

  it('/admin/oauth-integrations/new: inputs name, provider (google, microsoft, custom), clientId, clientSecret, tenant, scopes, issuer, authorizationEndpoint, tokenEndpoint; button Add; the redirect URI', async () => {
    const page = await sysadmin.get('/admin/oauth-integrations/new');
    const form = formWithAction(page.text, '/admin/oauth-integrations');
    const names = fieldNames(form);
    for (const f of [
      'name',
      'provider',
      'clientId',
      'clientSecret',
      'tenant',
      'scopes',
      'issuer',
      'authorizationEndpoint',
      'tokenEndpoint',
    ])
      expect(names, f).toContain(f);
    expect(selectOptions(form, 'provider')).toEqual(['google', 'microsoft', 'custom']);
    expect(buttonTexts(form)).toContain('Add');
    expect(unescapeHtml(page.text)).toContain(`${BASE_URL}/oauth/callback`);
  });

  it('POST /api/v1/oauth-integrations answers 201 with id at the top level, default scopes, the redirect URI, and no client secret', async () => {
    const r = await api('POST', '/api/v1/oauth-integrations', adminKey, {
      name: 'Google mailbox',
      provider: 'google',
      clientId: 'google-client',
      clientSecret: CLIENT_SECRET,
    });
    expect(r.status, r.text).toBe(201);
    expect(typeof r.body.id).toBe('string');
    expect(r.body).toMatchObject({
      name: 'Google mailbox',
      provider: 'google',
      clientId: 'google-client',
      redirectUri: `${BASE_URL}/oauth/callback`,
    });
    expect(r.body.scopes).toContain('https://mail.google.com/');
    expect(r.text).not.toContain(CLIENT_SECRET);
    googleId = r.body.id as string;
  });

  it('microsoft needs a tenant (not common) and defaults to SMTP.Send offline_access', async () => {
    expectError(
      await api('POST', '/api/v1/oauth-integrations', adminKey, {
        name: 'MS',
        provider: 'microsoft',
        clientId: 'c',
        clientSecret: CLIENT_SECRET,
      }),
      400,
      'validation_failed',
      'tenant',
    );
    expectError(
      await api('POST', '/api/v1/oauth-integrations', adminKey, {
        name: 'MS',
        provider: 'microsoft',
        clientId: 'c',
        clientSecret: CLIENT_SECRET,
        tenant: 'common',
      }),
      400,
      'validation_failed',
      'tenant',
    );
    const ok = await api('POST', '/api/v1/oauth-integrations', adminKey, {
      name: 'MS',
      provider: 'microsoft',
      clientId: 'c',
      clientSecret: CLIENT_SECRET,
      tenant: 'contoso.onmicrosoft.com',
    });
    expect(ok.status, ok.text).toBe(201);
    expect(ok.body.scopes).toEqual(expect.arrayContaining(['https://outlook.office.com/SMTP.Send', 'offline_access']));
    expect(ok.body.tenant).toBe('contoso.onmicrosoft.com');
    expect(ok.body.resolvedIssuer).toBe('https://login.microsoftonline.com/contoso.onmicrosoft.com/v2.0');
    expect((await api('DELETE', `/api/v1/oauth-integrations/${ok.body.id as string}`, adminKey)).status).toBe(204);
  });

  it('custom takes an issuer or authorizationEndpoint + tokenEndpoint; CRUD through GET, PATCH, PUT, DELETE', async () => {
    expectError(
      await api('POST', '/api/v1/oauth-integrations', adminKey, {
        name: 'Custom',
        provider: 'custom',
        clientId: 'c',
        clientSecret: CLIENT_SECRET,
      }),
      400,
      'validation_failed',
      'issuer',
    );
    const byIssuer = await api('POST', '/api/v1/oauth-integrations', adminKey, {
      name: 'Custom issuer',
      provider: 'custom',
      clientId: 'c',
      clientSecret: CLIENT_SECRET,
      issuer: 'https://idp.example.test',
    });
    expect(byIssuer.status, byIssuer.text).toBe(201);
    expect(byIssuer.body.issuer).toBe('https://idp.example.test');
    const byEndpoints = await api('POST', '/api/v1/oauth-integrations', adminKey, {
      name: 'Custom endpoints',
      provider: 'custom',
      clientId: 'c',
      clientSecret: CLIENT_SECRET,
      authorizationEndpoint: 'https://idp.example.test/authorize',
      tokenEndpoint: 'https://idp.example.test/token',
      scopes: ['mail.send'],
    });
    expect(byEndpoints.status, byEndpoints.text).toBe(201);
    expect(byEndpoints.body).toMatchObject({
      authorizationEndpoint: 'https://idp.example.test/authorize',
      tokenEndpoint: 'https://idp.example.test/token',
    });
    const id = byEndpoints.body.id as string;

    const list = await api('GET', '/api/v1/oauth-integrations', adminKey);
    expect((list.body.items as { id: string }[]).map((i) => i.id)).toEqual(
      expect.arrayContaining([id, byIssuer.body.id]),
    );
    expect((await api('GET', `/api/v1/oauth-integrations/${id}`, adminKey)).body).toMatchObject({
      id,
      name: 'Custom endpoints',
    });
    expect((await api('PATCH', `/api/v1/oauth-integrations/${id}`, adminKey, { name: 'Renamed' })).body).toMatchObject({
      id,
      name: 'Renamed',
    });
    // Moving the endpoints takes the client secret again: the stored one never goes where it was not given for.
    expectError(
      await api('PUT', `/api/v1/oauth-integrations/${id}`, adminKey, {
        name: 'Put',
        provider: 'custom',
        clientId: 'c2',
        issuer: 'https://other.example.test',
      }),
      400,
      'validation_failed',
      'clientSecret',
    );
    const put = await api('PUT', `/api/v1/oauth-integrations/${id}`, adminKey, {
      name: 'Put',
      provider: 'custom',
      clientId: 'c2',
      clientSecret: CLIENT_SECRET,
      issuer: 'https://other.example.test',
    });
    expect(put.status, put.text).toBe(200);
    expect(put.body).toMatchObject({ id, name: 'Put', clientId: 'c2' });
    expect(list.text + put.text).not.toContain(CLIENT_SECRET);
    for (const gone of [id, byIssuer.body.id as string])
      expect((await api('DELETE', `/api/v1/oauth-integrations/${gone}`, adminKey)).status).toBe(204);
    expectError(await api('GET', `/api/v1/oauth-integrations/${id}`, adminKey), 404, 'not_found');
  });

  it('the integration form posts with the JSON names: Add creates, Update edits, a blank clientSecret keeps the stored one', async () => {
    await sysadmin.get('/admin/oauth-integrations/new');
    const add = await sysadmin.postForm('/admin/oauth-integrations', {
      name: 'Form integration',
      provider: 'custom',
      clientId: 'form-client',
      clientSecret: CLIENT_SECRET,
      tenant: '',
      scopes: 'mail.send offline_access',
      issuer: '',
      authorizationEndpoint: 'https://idp.example.test/authorize',
      tokenEndpoint: 'https://idp.example.test/token',
    });
    expect(add.res.status, add.text).toBe(303);
    const id = /^\/admin\/oauth-integrations\/([A-Za-z0-9_-]+)$/.exec(add.res.headers.get('location') ?? '')?.[1];
    expect(id).toBeTruthy();
    expect((await api('GET', `/api/v1/oauth-integrations/${id}`, adminKey)).body).toMatchObject({
      name: 'Form integration',
      provider: 'custom',
      clientId: 'form-client',
      scopes: expect.arrayContaining(['mail.send', 'offline_access']),
      tokenEndpoint: 'https://idp.example.test/token',
    });
    const sealed = (await app.store.get<{ clientSecret: string }>('oauth_integrations', id!))?.value.clientSecret;
    expect(sealed).toBeTruthy();
    await sysadmin.get(`/admin/oauth-integrations/${id}`);
    const update = await sysadmin.postForm(`/admin/oauth-integrations/${id}`, {
      name: 'Form integration 2',
      provider: 'custom',
      clientId: 'form-client',
      clientSecret: '',
      authorizationEndpoint: 'https://idp.example.test/authorize',
      tokenEndpoint: 'https://idp.example.test/token',
    });
    expect(update.res.status, update.text).toBe(303);
    expect((await api('GET', `/api/v1/oauth-integrations/${id}`, adminKey)).body.name).toBe('Form integration 2');
    expect((await app.store.get<{ clientSecret: string }>('oauth_integrations', id!))?.value.clientSecret).toBe(sealed);
    await api('DELETE', `/api/v1/oauth-integrations/${id}`, adminKey);
  });

  it('/admin/oauth-integrations/:id shows the redirect URI and an Update button, never the client secret', async () => {
    const page = await sysadmin.get(`/admin/oauth-integrations/${googleId}`);
    expect(page.res.status).toBe(200);
    expect(unescapeHtml(page.text)).toContain(`${BASE_URL}/oauth/callback`);
    expect(buttonTexts(formWithAction(page.text, `/admin/oauth-integrations/${googleId}`))).toContain('Update');
    expect(page.text).not.toContain(CLIENT_SECRET);
  });

  it('POST /api/v1/oauth-integrations/:id/rotate-secret takes {clientSecret}: validated, unknown fields refused, the secret never echoed', async () => {
    const port = await closedPort();
    const custom = await api('POST', '/api/v1/oauth-integrations', adminKey, {
      name: 'Unreachable',
      provider: 'custom',
      clientId: 'c',
      clientSecret: CLIENT_SECRET,
      authorizationEndpoint: `http://127.0.0.1:${port}/authorize`,
      tokenEndpoint: `http://127.0.0.1:${port}/token`,
    });
    expect(custom.status, custom.text).toBe(201);
    const id = custom.body.id as string;
    expectError(
      await api('POST', `/api/v1/oauth-integrations/${id}/rotate-secret`, adminKey, {}),
      400,
      'validation_failed',
      'clientSecret',
    );
    expectError(
      await api('POST', `/api/v1/oauth-integrations/${id}/rotate-secret`, adminKey, { secret: 'x' }),
      400,
      'validation_failed',
    );
    const newSecret = 'new-secret-never-echoed-987654321';
    const r = await api('POST', `/api/v1/oauth-integrations/${id}/rotate-secret`, adminKey, {
      clientSecret: newSecret,
    });
    // The provider cannot prove the new secret here: the answer is an error, not a missing route.
    expect(r.status).not.toBe(404);
    expect(r.text).not.toContain(newSecret);
    expect(r.text).not.toContain(CLIENT_SECRET);
    expectError(
      await api('POST', '/api/v1/oauth-integrations/no-such-id/rotate-secret', adminKey, { clientSecret: newSecret }),
      404,
      'not_found',
    );
    await api('DELETE', `/api/v1/oauth-integrations/${id}`, adminKey);
  });

  it('an SMTP server with authMethod oauth2 shows Authorize before authorization (not Re-authorize, not Disconnect)', async () => {
    const server = await api('POST', '/api/v1/smtp-servers', adminKey, {
      name: 'Gmail OAuth',
      fromAddress: 'me@example.com',
      serviceProvider: 'gmail',
      authMethod: 'oauth2',
      oauthIntegrationId: googleId,
    });
    expect(server.status, server.text).toBe(201);
    const id = server.body.id as string;
    const page = await sysadmin.get(`/admin/smtp-servers/${id}`);
    const buttons = buttonTexts(page.text);
    expect(buttons).toContain('Authorize');
    expect(buttons).toContain('Test connection');
    expect(buttons).not.toContain('Re-authorize');
    expect(buttons).not.toContain('Disconnect');
    expect(buttonTexts(formWithAction(page.text, `/admin/smtp-servers/${id}/authorize`))).toEqual(['Authorize']);
    // The admin role reads the page but configures nothing: no Authorize, no Test connection.
    const asAdmin = buttonTexts((await admin.get(`/admin/smtp-servers/${id}`)).text);
    expect(asAdmin).not.toContain('Authorize');
    expect(asAdmin).not.toContain('Test connection');
    await admin.refreshCsrf();
    expect((await admin.postForm(`/admin/smtp-servers/${id}/authorize`)).res.status).toBe(403);
    // POST :id/disconnect exists; with nothing authorized it says so instead of the route being missing.
    const disconnect = await api('POST', `/api/v1/smtp-servers/${id}/disconnect`, adminKey);
    expectError(disconnect, 404, 'not_found');
    expect((disconnect.body.error as { message: string }).message).not.toMatch(/^No page or endpoint/);
    await api('DELETE', `/api/v1/smtp-servers/${id}`, adminKey);
  });

  it('Authorize → provider consent → GET /oauth/callback: the page shows the mailbox, Re-authorize and Disconnect; POST :id/disconnect removes the grant', async () => {
    const clientId = 'contract-flow-client';
    await provider.registerClient({
      clientId,
      clientSecret: CLIENT_SECRET,
      redirectUris: [`${BASE_URL}/oauth/callback`],
    });
    const integration = await api('POST', '/api/v1/oauth-integrations', adminKey, {
      name: 'Flow',
      provider: 'google',
      clientId,
      clientSecret: CLIENT_SECRET,
    });
    expect(integration.status, integration.text).toBe(201);
    const server = await api('POST', '/api/v1/smtp-servers', adminKey, {
      name: 'OAuth flow',
      fromAddress: 'alice@example.test',
      host: '127.0.0.1',
      port: smtp.port,
      authMethod: 'oauth2',
      oauthIntegrationId: integration.body.id,
    });
    expect(server.status, server.text).toBe(201);
    const id = server.body.id as string;

    await sysadmin.get(`/admin/smtp-servers/${id}`);
    const redirect = await sysadmin.postForm(`/admin/smtp-servers/${id}/authorize`);
    expect(redirect.res.status, redirect.text).toBe(200);
    const action = /<form id="oauth-redirect" method="get" action="([^"]+)"/.exec(redirect.text)?.[1];
    expect(action).toBeTruthy();
    const authorizationUrl = new URL(unescapeHtml(action!));
    for (const m of formWithAction(redirect.text, action!).matchAll(
      /<input type="hidden" name="([^"]+)" value="([^"]*)"/g,
    ))
      authorizationUrl.searchParams.set(unescapeHtml(m[1]!), unescapeHtml(m[2]!));
    expect(authorizationUrl.searchParams.get('redirect_uri')).toBe(`${BASE_URL}/oauth/callback`);
    expect(authorizationUrl.searchParams.get('prompt')).toBe('consent');
    expect(authorizationUrl.searchParams.get('access_type')).toBe('offline');
    expect(authorizationUrl.searchParams.get('code_challenge_method')).toBe('S256');

    expect(authorizationUrl.searchParams.get('scope')?.split(' ')).toEqual(
      expect.arrayContaining(['https://mail.google.com/', 'openid', 'email']),
    );

    const callback = await consentAtProvider(authorizationUrl.toString(), 'alice@example.test');
    expect(`${callback.origin}${callback.pathname}`).toBe(`${BASE_URL}/oauth/callback`);
    // Bound to the admin session that pressed Authorize: another sysadmin's session is refused.
    const other = app.anonymousSession();
    const otherUser = await app.createUser('sysadmin');
    await other.login(otherUser.email, otherUser.password);
    const foreign = await other.get(`${callback.pathname}${callback.search}`);
    expect(foreign.res.status).toBe(403);
    const done = await sysadmin.get(`${callback.pathname}${callback.search}`);
    expect(done.res.status, done.text).toBe(303);
    expect(done.res.headers.get('location')).toBe(`/admin/smtp-servers/${id}`);
    // Single use: the same callback a second time completes nothing.
    const replay = await sysadmin.get(`${callback.pathname}${callback.search}`);
    expect(replay.res.status).toBe(400);

    const page = await sysadmin.get(`/admin/smtp-servers/${id}`);
    expect(page.text).toMatch(/id="oauth-mailbox">alice@example\.test</);
    const buttons = buttonTexts(page.text);
    expect(buttons).toContain('Re-authorize');
    expect(buttons).toContain('Disconnect');
    expect(buttons).not.toContain('Authorize');
    expect(page.text).not.toContain(CLIENT_SECRET);
    const accessToken = (await app.services.tokens.getAccessToken(id)).accessToken;
    expect(accessToken.length).toBeGreaterThan(10);
    const grant = await api('GET', `/api/v1/smtp-servers/${id}/oauth`, adminKey);
    expect(grant.body).toMatchObject({ mailbox: 'alice@example.test', status: 'active' });
    const audit = await api('GET', '/api/v1/audit', adminKey);
    for (const r of [
      grant.text,
      audit.text,
      page.text,
      (await api('GET', `/api/v1/smtp-servers/${id}`, adminKey)).text,
    ]) {
      expect(r).not.toContain(accessToken);
      expect(r).not.toContain(CLIENT_SECRET);
    }

    const disconnected = await api('POST', `/api/v1/smtp-servers/${id}/disconnect`, adminKey);
    expect(disconnected.status, disconnected.text).toBe(200);
    expect(buttonTexts((await sysadmin.get(`/admin/smtp-servers/${id}`)).text)).toContain('Authorize');
    await api('DELETE', `/api/v1/smtp-servers/${id}`, adminKey);
  });
});

describe('API keys', () => {
  it('/admin/api-keys: input name, checkboxes scopes = send, admin, button Create API key; the key is shown once', async () => {
    const page = await sysadmin.get('/admin/api-keys');
    const form = formWithAction(page.text, '/admin/api-keys');
    expect(fieldNames(form)).toContain('name');
    expect(checkboxValues(form, 'scopes')).toEqual(['send', 'admin']);
    expect(buttonTexts(form)).toContain('Create API key');

    const posted = await sysadmin.postForm('/admin/api-keys', { name: 'from the page', scopes: ['send', 'admin'] });
    expect(posted.res.status).toBe(303);
    const created = await sysadmin.get('/admin/api-keys');
    const key = /value="(mgk_[^"]+)"/.exec(created.text)?.[1];
    expect(key).toMatch(API_KEY_SHAPE);
    expect((await api('GET', '/api/v1/audit', key!)).status).toBe(200);
    const again = await sysadmin.get('/admin/api-keys');
    expect(again.text).not.toContain(key!);
    expect((await api('GET', '/api/v1/api-keys', adminKey)).text).not.toContain(key!);
  });

  it('POST /api/v1/api-keys answers 201 with id and the key once; GET lists without it; DELETE :id revokes', async () => {
    const created = await api('POST', '/api/v1/api-keys', adminKey, { name: 'ci', scopes: ['send'] });
    expect(created.status, created.text).toBe(201);
    expect(typeof created.body.id).toBe('string');
    expect(created.body.key).toMatch(API_KEY_SHAPE);
    const key = created.body.key as string;
    const list = await api('GET', '/api/v1/api-keys', adminKey);
    expect((list.body.items as { id: string }[]).map((k) => k.id)).toContain(created.body.id);
    expect(list.text).not.toContain(key);
    expect(
      (
        await api('POST', '/api/v1/messages', key, {
          to: 'a@example.net',
          subject: 's',
          text: 't',
          serverId: 'no-such-server',
        })
      ).status,
    ).not.toBe(401);
    const del = await api('DELETE', `/api/v1/api-keys/${created.body.id as string}`, adminKey);
    expect(del.status).toBe(200);
    expect(del.text).not.toContain(key);
    expectError(
      await api('POST', '/api/v1/messages', key, { to: 'a@example.net', subject: 's', text: 't' }),
      401,
      'invalid_api_key',
    );
    expectError(await api('DELETE', '/api/v1/api-keys/no-such-key', adminKey), 404, 'not_found');
  });

  it('keys from the harness and the service have the mgk_ shape too', async () => {
    expect(adminKey).toMatch(API_KEY_SHAPE);
    expect(sendKey).toMatch(API_KEY_SHAPE);
  });
});

describe('JSON API: routes, 201 with id, error shape', () => {
  it.each([
    ['GET', '/api/v1/smtp-servers'],
    ['POST', '/api/v1/smtp-servers'],
    ['GET', '/api/v1/smtp-servers/x1'],
    ['PATCH', '/api/v1/smtp-servers/x1'],
    ['PUT', '/api/v1/smtp-servers/x1'],
    ['DELETE', '/api/v1/smtp-servers/x1'],
    ['POST', '/api/v1/smtp-servers/x1/test'],
    ['POST', '/api/v1/smtp-servers/x1/disconnect'],
    ['GET', '/api/v1/oauth-integrations'],
    ['POST', '/api/v1/oauth-integrations'],
    ['GET', '/api/v1/oauth-integrations/x1'],
    ['PUT', '/api/v1/oauth-integrations/x1'],
    ['DELETE', '/api/v1/oauth-integrations/x1'],
    ['POST', '/api/v1/oauth-integrations/x1/rotate-secret'],
    ['POST', '/api/v1/api-keys'],
    ['GET', '/api/v1/api-keys'],
    ['DELETE', '/api/v1/api-keys/x1'],
    ['GET', '/api/v1/audit'],
  ])('%s %s exists and needs the admin scope (403 for a send key)', async (method, path) => {
    await expectAdminRoute(method, path);
  });

  it('401 without a key and with a malformed key, in the error shape', async () => {
    const none = await api('GET', '/api/v1/smtp-servers', null);
    expectError(none, 401, 'invalid_api_key');
    expect(none.headers.get('www-authenticate')).toMatch(/^Bearer/);
    expectError(await api('GET', '/api/v1/smtp-servers', 'mgk_wrong'), 401, 'invalid_api_key');
    expectError(
      await api('POST', '/api/v1/messages', null, { to: 'a@example.net', subject: 's', text: 't' }),
      401,
      'invalid_api_key',
    );
  });

  it('403 for a key without the scope: an admin key cannot send', async () => {
    expectError(
      await api('POST', '/api/v1/messages', adminKey, { to: 'a@example.net', subject: 's', text: 't' }),
      403,
      'insufficient_scope',
    );
  });

  it('404 for an unknown id', async () => {
    expectError(await api('GET', '/api/v1/smtp-servers/no-such-server', adminKey), 404, 'not_found');
    expectError(await api('POST', '/api/v1/smtp-servers/no-such-server/test', adminKey), 404, 'not_found');
    expectError(await api('GET', '/api/v1/oauth-integrations/no-such-integration', adminKey), 404, 'not_found');
    expectError(await api('GET', '/api/v1/messages/no-such-message', sendKey), 404, 'not_found');
  });

  it('400 naming the field: missing, malformed and unknown fields', async () => {
    expectError(
      await api('POST', '/api/v1/smtp-servers', adminKey, { name: 'No from', host: 'relay.example.net' }),
      400,
      'validation_failed',
      'fromAddress',
    );
    expectError(
      await api('POST', '/api/v1/smtp-servers', adminKey, {
        name: 'Bad port',
        fromAddress: 'a@example.com',
        host: 'relay.example.net',
        port: 70000,
      }),
      400,
      'validation_failed',
      'port',
    );
    expectError(
      await api('POST', '/api/v1/smtp-servers', adminKey, {
        name: 'Bad protocol',
        fromAddress: 'a@example.com',
        host: 'relay.example.net',
        protocol: 'pop3',
      }),
      400,
      'validation_failed',
      'protocol',
    );
    expectError(
      await api('POST', '/api/v1/smtp-servers', adminKey, {
        name: 'Bad auth',
        fromAddress: 'a@example.com',
        host: 'relay.example.net',
        authMethod: 'ntlm',
      }),
      400,
      'validation_failed',
      'authMethod',
    );
    expectError(
      await api('POST', '/api/v1/oauth-integrations', adminKey, {
        name: 'x',
        provider: 'yahoo',
        clientId: 'c',
        clientSecret: 's',
      }),
      400,
      'validation_failed',
      'provider',
    );
    expectError(
      await api('POST', '/api/v1/api-keys', adminKey, { name: 'x', scopes: ['root'] }),
      400,
      'validation_failed',
    );
    expectError(
      await api('POST', '/api/v1/messages', sendKey, { subject: 's', text: 't' }),
      400,
      'validation_failed',
      'to',
    );
    const unknown = await api('POST', '/api/v1/messages', sendKey, {
      to: 'a@example.net',
      subject: 's',
      text: 't',
      from: 'evil@example.net',
    });
    expectError(unknown, 400, 'validation_failed');
    expect(unknown.text).toContain('from');
  });

  it('smtp-servers CRUD: 201 with id at the top level, list, get, PATCH, DELETE 204, then 404; never the password', async () => {
    const created = await api('POST', '/api/v1/smtp-servers', adminKey, {
      name: 'CRUD',
      fromAddress: 'crud@example.com',
      host: 'relay.example.net',
      authMethod: 'basic',
      username: 'u',
      password: RELAY_PASSWORD,
      tls: true,
    });
    expect(created.status, created.text).toBe(201);
    const id = created.body.id as string;
    expect(typeof id).toBe('string');
    expect(created.body).toMatchObject({
      name: 'CRUD',
      fromAddress: 'crud@example.com',
      host: 'relay.example.net',
      tls: true,
      authMethod: 'basic',
      username: 'u',
    });
    const list = await api('GET', '/api/v1/smtp-servers', adminKey);
    expect((list.body.items as { id: string }[]).map((s) => s.id)).toContain(id);
    const one = await api('GET', `/api/v1/smtp-servers/${id}`, adminKey);
    expect(one.body).toMatchObject({ id, name: 'CRUD' });
    const patched = await api('PATCH', `/api/v1/smtp-servers/${id}`, adminKey, { description: 'patched' });
    expect(patched.status, patched.text).toBe(200);
    expect(patched.body).toMatchObject({ id, description: 'patched' });
    for (const r of [created, list, one, patched]) {
      expect(r.text).not.toContain(RELAY_PASSWORD);
      expect(r.text).not.toMatch(/"password"\s*:/);
    }
    expect((await api('DELETE', `/api/v1/smtp-servers/${id}`, adminKey)).status).toBe(204);
    expectError(await api('GET', `/api/v1/smtp-servers/${id}`, adminKey), 404, 'not_found');
  });

  it('POST :id/test answers {ok, durationMs, transcript: [lines]} with secrets masked; a failure adds error and hint', async () => {
    const ok = await api('POST', `/api/v1/smtp-servers/${relayId}/test`, adminKey);
    expect(ok.status, ok.text).toBe(200);
    expect(ok.body.ok).toBe(true);
    expect(typeof ok.body.durationMs).toBe('number');
    expect(Array.isArray(ok.body.transcript)).toBe(true);
    expect((ok.body.transcript as unknown[]).length).toBeGreaterThan(0);
    expect((ok.body.transcript as unknown[]).every((l) => typeof l === 'string')).toBe(true);
    expect(ok.body).not.toHaveProperty('error');
    expect(ok.text).not.toContain(RELAY_PASSWORD);
    expect(ok.text).not.toContain(Buffer.from(`\0relay\0${RELAY_PASSWORD}`).toString('base64'));
    expect(ok.text).not.toContain(Buffer.from(RELAY_PASSWORD).toString('base64'));

    const port = await closedPort();
    const dead = await api('POST', '/api/v1/smtp-servers', adminKey, {
      name: 'Dead',
      fromAddress: 'dead@example.com',
      host: '127.0.0.1',
      port,
      timeoutMs: 2000,
    });
    const failed = await api('POST', `/api/v1/smtp-servers/${dead.body.id as string}/test`, adminKey);
    expect(failed.status, failed.text).toBe(200);
    expect(failed.body).toMatchObject({
      ok: false,
      durationMs: expect.any(Number),
      transcript: expect.any(Array),
      error: expect.any(String),
      hint: expect.any(String),
    });
    await api('DELETE', `/api/v1/smtp-servers/${dead.body.id as string}`, adminKey);
  });

  it('the Test connection button shows the transcript on the page, secrets masked', async () => {
    await sysadmin.get(`/admin/smtp-servers/${relayId}`);
    // Post/redirect/get: the result is shown once by the server page it redirects to.
    const posted = await sysadmin.postForm(`/admin/smtp-servers/${relayId}/test`);
    expect(posted.res.status).toBe(303);
    const r = await sysadmin.get(posted.res.headers.get('location')!);
    expect(r.text).toContain('id="transcript"');
    expect(r.text).not.toContain(RELAY_PASSWORD);
    expect(r.text).not.toContain(Buffer.from(`\0relay\0${RELAY_PASSWORD}`).toString('base64'));
  });

  it('GET /api/v1/audit lists what was done, without secrets', async () => {
    const r = await api('GET', '/api/v1/audit', adminKey);
    expect(r.status).toBe(200);
    const actions = (r.body.items as { action?: string; entry?: { action: string } }[]).map(
      (e) => e.entry?.action ?? e.action,
    );
    expect(actions).toEqual(expect.arrayContaining(['smtp_server.create', 'api_key.create']));
    expect(r.text).not.toContain(RELAY_PASSWORD);
    expect(r.text).not.toContain(CLIENT_SECRET);
  });
});

describe('messages: POST 202 with id; every status spelled as in DESIGN.md', () => {
  it('POST /api/v1/messages answers 202 with id and reaches sent on a real SMTP server (multipart, From from fromAddress, emailPrefix on the subject)', async () => {
    const r = await api('POST', '/api/v1/messages', sendKey, {
      fromName: 'Alice',
      to: 'bob@example.net',
      subject: 'Hello',
      text: 'plain',
      html: '<p>html</p>',
    });
    expect(r.status, r.text).toBe(202);
    expect(typeof r.body.id).toBe('string');
    expect(MESSAGE_STATUSES).toContain(r.body.status);
    const sent = await waitForStatus(r.body.id as string, 'sent');
    expect(sent).toMatchObject({ id: r.body.id, status: 'sent', attempts: 1 });
    const received = smtp.messages.find((m) => m.to.includes('bob@example.net'))!;
    expect(received.from).toBe('notify@example.com');
    expect(received.headers).toContain('From: "Alice (mailgate)" <notify@example.com>');
    expect(received.headers).toContain('Subject: [mailgate] Hello');
    expect(received.headers.find((h) => h.startsWith('Content-Type:'))).toMatch(/multipart\/alternative/);
  });

  it('a 5xx reply ends in failed with attempts and a lastError that has a hint', async () => {
    const r = await api('POST', '/api/v1/messages', sendKey, {
      to: 'gone@example.net',
      subject: 'Permanent',
      text: 't',
    });
    expect(r.status).toBe(202);
    const failed = await waitForStatus(r.body.id as string, 'failed');
    expect(failed.attempts).toBe(1);
    expect(failed.lastError).toMatchObject({ hint: expect.any(String) });
    expect((failed.lastError as { hint: string }).hint.length).toBeGreaterThan(0);
  });

  it('a 4xx reply ends in deferred (will retry) with a lastError that has a hint', async () => {
    const r = await api('POST', '/api/v1/messages', sendKey, {
      to: 'busy@example.net',
      subject: 'Temporary',
      text: 't',
    });
    expect(r.status).toBe(202);
    const deferred = await waitForStatus(r.body.id as string, 'deferred');
    expect(deferred.attempts).toBe(1);
    expect(deferred.lastError).toMatchObject({ hint: expect.any(String) });
  });

  it('to, cc and bcc take an address or a list; serverId defaults to the default server; Bcc never shows in the headers', async () => {
    const r = await api('POST', '/api/v1/messages', sendKey, {
      to: ['t1@example.net', 't2@example.net'],
      cc: 'c1@example.net',
      bcc: ['b1@example.net'],
      subject: 'Lists',
      text: 't',
    });
    expect(r.status, r.text).toBe(202);
    const sent = await waitForStatus(r.body.id as string, 'sent');
    expect(sent.serverId).toBe(relayId);
    const received = smtp.messages.find((m) => m.to.includes('t1@example.net'))!;
    expect([...received.to].sort()).toEqual(['b1@example.net', 'c1@example.net', 't1@example.net', 't2@example.net']);
    expect(received.headers.some((h) => /^bcc:/i.test(h))).toBe(false);
  });

  it('held also means the server is paused: rejected credentials pause the server instead of burning attempts', async () => {
    const wrong = await api('POST', '/api/v1/smtp-servers', adminKey, {
      name: 'Wrong password',
      fromAddress: 'w@example.com',
      host: '127.0.0.1',
      port: smtp.port,
      authMethod: 'basic',
      username: 'relay',
      password: 'not the password',
    });
    expect(wrong.status, wrong.text).toBe(201);
    const serverId = wrong.body.id as string;
    const first = await api('POST', '/api/v1/messages', sendKey, {
      serverId,
      to: 'p1@example.net',
      subject: 'Paused',
      text: 't',
    });
    const held = await waitForStatus(first.body.id as string, 'held');
    expect(held.lastError).toMatchObject({ hint: expect.any(String) });
    const second = await api('POST', '/api/v1/messages', sendKey, {
      serverId,
      to: 'p2@example.net',
      subject: 'Paused',
      text: 't',
    });
    expect(second.body.status).toBe('held');
    expect((await api('GET', `/api/v1/smtp-servers/${serverId}`, adminKey)).body.paused).toMatchObject({
      reason: expect.any(String),
    });
  });

  it('an Idempotency-Key never yields two messages', async () => {
    const body = { to: 'idem@example.net', subject: 'Once', text: 't' };
    const first = await api('POST', '/api/v1/messages', sendKey, body, { 'idempotency-key': 'contract-1' });
    const second = await api('POST', '/api/v1/messages', sendKey, body, { 'idempotency-key': 'contract-1' });
    expect(first.status).toBe(202);
    expect(second.body.id).toBe(first.body.id);
  });
});

describe('roles: sysadmin configures, admin only switches outgoing mail and reads status', () => {
  it('admin reads the status pages', async () => {
    for (const path of [
      '/admin/smtp-servers',
      `/admin/smtp-servers/${relayId}`,
      '/admin/oauth-integrations',
      '/admin/mail-queue',
      '/admin/audit',
    ]) {
      expect((await admin.get(path)).res.status, path).toBe(200);
    }
  });

  it('admin gets 403 on every configuring page and post, and nothing changes', async () => {
    const serversBefore = ((await api('GET', '/api/v1/smtp-servers', adminKey)).body.items as unknown[]).length;
    const integrationsBefore = ((await api('GET', '/api/v1/oauth-integrations', adminKey)).body.items as unknown[])
      .length;
    await admin.refreshCsrf();
    const attempts: [string, 'GET' | 'POST', Record<string, string>][] = [
      ['/admin/smtp-servers/new', 'GET', {}],
      ['/admin/oauth-integrations/new', 'GET', {}],
      ['/admin/api-keys', 'GET', {}],
      [
        '/admin/smtp-servers',
        'POST',
        { name: 'By admin', fromAddress: 'a@example.com', host: '127.0.0.1', authMethod: 'none' },
      ],
      [`/admin/smtp-servers/${relayId}`, 'POST', { name: 'Renamed by admin' }],
      [`/admin/smtp-servers/${relayId}/test`, 'POST', {}],
      [`/admin/smtp-servers/${relayId}/delete`, 'POST', {}],
      ['/admin/oauth-integrations', 'POST', { name: 'By admin', provider: 'google', clientId: 'c', clientSecret: 's' }],
      ['/admin/api-keys', 'POST', { name: 'By admin', scopes: 'admin' }],
    ];
    for (const [path, method, fields] of attempts) {
      const r = method === 'GET' ? await admin.get(path) : await admin.postForm(path, fields);
      expect(r.res.status, `${method} ${path}`).toBe(403);
    }
    expect(((await api('GET', '/api/v1/smtp-servers', adminKey)).body.items as unknown[]).length).toBe(serversBefore);
    expect(((await api('GET', '/api/v1/oauth-integrations', adminKey)).body.items as unknown[]).length).toBe(
      integrationsBefore,
    );
    expect((await api('GET', `/api/v1/smtp-servers/${relayId}`, adminKey)).body.name).toBe('Loopback relay');
  });

  it('every state-changing /admin route but the outgoing-mail switch answers 403 to admin (all routes the app has)', async () => {
    const posts = routesOf(app).filter(([method, path]) => method === 'POST' && path.startsWith('/admin/'));
    expect(posts.map(([, path]) => path)).toEqual(
      expect.arrayContaining([
        '/admin/smtp-servers',
        '/admin/smtp-servers/outgoing',
        '/admin/oauth-integrations',
        '/admin/api-keys',
      ]),
    );
    await admin.refreshCsrf();
    for (const [, path] of posts) {
      if (path === '/admin/smtp-servers/outgoing') continue;
      const r = await admin.postForm(path.replace(/:\w+/g, 'x1'));
      expect(r.res.status, `POST ${path}`).toBe(403);
    }
  });

  it('every /api/v1 route but the send API needs the admin scope (all routes the app has)', async () => {
    // The OpenAPI document describes the API's shape and holds nothing of the deployment: it is public.
    const apiRoutes = routesOf(app).filter(
      ([, path]) =>
        path.startsWith('/api/v1/') && !path.startsWith('/api/v1/messages') && path !== '/api/v1/openapi.json',
    );
    expect((await api('GET', '/api/v1/openapi.json', null)).status).toBe(200);
    expect(apiRoutes.length).toBeGreaterThan(15);
    for (const [method, path] of apiRoutes) await expectAdminRoute(method, path.replace(/:\w+/g, 'x1'));
  });

  it('admin sees no Test connection or submit button on the server page', async () => {
    const page = await admin.get(`/admin/smtp-servers/${relayId}`);
    const buttons = buttonTexts(page.text);
    expect(buttons).not.toContain('Test connection');
    expect(buttons).not.toContain('Authorize');
    expect(page.text).toMatch(/<fieldset disabled/);
  });

  it('admin switches outgoing mail off: a new message is held; switched on, it is sent', async () => {
    const list = await admin.get('/admin/smtp-servers');
    expect(buttonTexts(list.text)).toContain('Disable outgoing mail');
    // Disabling asks for confirmation first (a page with Confirm); only the confirmed post acts.
    const ask = await admin.postForm('/admin/smtp-servers/outgoing', { enabled: 'false' });
    expect(ask.res.status).toBe(200);
    expect(buttonTexts(ask.text)).toContain('Confirm');
    const off = await admin.postForm('/admin/smtp-servers/outgoing', { enabled: 'false', confirmed: 'yes' });
    expect(off.res.status).toBe(303);
    try {
      const r = await api('POST', '/api/v1/messages', sendKey, { to: 'held@example.net', subject: 'Held', text: 't' });
      expect(r.status).toBe(202);
      expect(r.body.status).toBe('held');
      expect(await inDeliverySchedule(app, r.body.id as string)).toBe(false);
      expect((await api('GET', `/api/v1/messages/${r.body.id as string}`, sendKey)).body.status).toBe('held');
      expect(smtp.messages.some((m) => m.to.includes('held@example.net'))).toBe(false);
      expect(buttonTexts((await admin.get('/admin/smtp-servers')).text)).toContain('Enable outgoing mail');
      const on = await admin.postForm('/admin/smtp-servers/outgoing', { enabled: 'true' });
      expect(on.res.status).toBe(303);
      await waitForStatus(r.body.id as string, 'sent');
    } finally {
      await app.services.mail.servers.setOutgoingEnabled(true, { actor: { type: 'system', id: 'test' } });
    }
  });
});

describe('variables: MAILGATE_SEND_DISABLED and MAILGATE_SMTP_HOST/PORT', () => {
  let staging: TestApp;
  let stagingKey: string;
  let stagingSend: string;
  let secretsDir: string;

  beforeAll(async () => {
    secretsDir = await mkdtemp(path.join(os.tmpdir(), 'mailgate-contract-'));
    await writeFile(path.join(secretsDir, 'relay-password'), RELAY_PASSWORD, { mode: 0o600 });
    await writeFile(
      path.join(secretsDir, 'servers.json'),
      JSON.stringify([
        {
          id: 'corporate',
          name: 'Corporate relay',
          fromAddress: 'corp@example.com',
          host: '127.0.0.1',
          port: smtp.port,
          authMethod: 'basic',
          username: 'relay',
          passwordFile: path.join(secretsDir, 'relay-password'),
        },
      ]),
    );
    staging = await startTestApp({
      workers: true,
      env: {
        MAILGATE_SEND_DISABLED: 'true',
        MAILGATE_SMTP_HOST: '127.0.0.1',
        MAILGATE_SMTP_PORT: String(smtp.port),
        MAILGATE_SMTP_LOCALHOST: 'mailgate.example.org',
        MAILGATE_SMTP_SERVERS_FILE: path.join(secretsDir, 'servers.json'),
      },
    });
    [stagingKey, stagingSend] = await Promise.all([staging.apiKey(['admin']), staging.apiKey(['send'])]);
  }, 20_000);

  afterAll(async () => {
    await staging?.close();
    if (secretsDir) await rm(secretsDir, { recursive: true, force: true });
  });

  it('MAILGATE_SMTP_SERVERS_FILE: the server is listed read-only, refuses changes, never shows its password', async () => {
    const one = await api('GET', '/api/v1/smtp-servers/corporate', stagingKey, undefined, {}, staging);
    expect(one.status, one.text).toBe(200);
    expect(one.body).toMatchObject({ id: 'corporate', readOnly: true, hasPassword: true });
    const list = await api('GET', '/api/v1/smtp-servers', stagingKey, undefined, {}, staging);
    expect(list.text).toContain('corporate');
    expectError(
      await api('PATCH', '/api/v1/smtp-servers/corporate', stagingKey, { name: 'changed' }, {}, staging),
      409,
      'read_only',
    );
    expectError(
      await api('DELETE', '/api/v1/smtp-servers/corporate', stagingKey, undefined, {}, staging),
      409,
      'read_only',
    );
    const test = await api('POST', '/api/v1/smtp-servers/corporate/test', stagingKey, undefined, {}, staging);
    expect(test.body.ok, test.text).toBe(true);
    const session = await staging.browserSession('sysadmin');
    const page = await session.get('/admin/smtp-servers/corporate');
    expect(page.text).toContain('MAILGATE_SMTP_SERVERS_FILE');
    expect(page.text).toMatch(/<fieldset disabled/);
    for (const text of [one.text, list.text, test.text, page.text]) expect(text).not.toContain(RELAY_PASSWORD);
  });

  it('presets default to https://accounts.google.com; plain http issuers are refused without MAILGATE_ALLOW_INSECURE_OAUTH', async () => {
    const google = await api(
      'POST',
      '/api/v1/oauth-integrations',
      stagingKey,
      { name: 'G', provider: 'google', clientId: 'c', clientSecret: CLIENT_SECRET },
      {},
      staging,
    );
    expect(google.status, google.text).toBe(201);
    expect(google.body.resolvedIssuer).toBe('https://accounts.google.com');
    expectError(
      await api(
        'POST',
        '/api/v1/oauth-integrations',
        stagingKey,
        {
          name: 'H',
          provider: 'custom',
          clientId: 'c',
          clientSecret: CLIENT_SECRET,
          issuer: 'http://idp.example.test',
        },
        {},
        staging,
      ),
      400,
      'validation_failed',
      'issuer',
    );
  });

  it('MAILGATE_BASE_URL defaults to http://localhost:3000, and the redirect URI is built from it', async () => {
    const session = await staging.browserSession('sysadmin');
    expect(unescapeHtml((await session.get('/admin/oauth-integrations/new')).text)).toContain(
      'http://localhost:3000/oauth/callback',
    );
  });

  it('MAILGATE_SMTP_HOST/PORT/LOCALHOST win over the form, and the pages say so', async () => {
    const created = await api(
      'POST',
      '/api/v1/smtp-servers',
      stagingKey,
      {
        name: 'Production relay',
        fromAddress: 'prod@example.com',
        host: 'smtp.production.example',
        port: 2525,
        isDefault: true,
      },
      {},
      staging,
    );
    expect(created.status, created.text).toBe(201);
    expect(created.body).toMatchObject({
      host: 'smtp.production.example',
      port: 2525,
      effective: { host: '127.0.0.1', port: smtp.port },
    });
    const id = created.body.id as string;
    const test = await api('POST', `/api/v1/smtp-servers/${id}/test`, stagingKey, undefined, {}, staging);
    expect(test.body.ok, test.text).toBe(true);
    expect(test.body.transcript).toContain('C: EHLO mailgate.example.org');

    const session = await staging.browserSession('sysadmin');
    const list = await session.get('/admin/smtp-servers');
    expect(list.text).toContain(`MAILGATE_SMTP_HOST=127.0.0.1`);
    expect(list.text).toContain(`MAILGATE_SMTP_PORT=${smtp.port}`);
    const page = await session.get(`/admin/smtp-servers/${id}`);
    expect(page.text).toContain('MAILGATE_SMTP_HOST');
    expect(page.text).toContain('MAILGATE_SMTP_PORT');
    expect(page.text).toContain(`127.0.0.1:${smtp.port}`);
    expect(page.text).toContain('MAILGATE_SMTP_LOCALHOST');
    expect(list.text).toContain('MAILGATE_SMTP_LOCALHOST=mailgate.example.org');
  });

  it('MAILGATE_SEND_DISABLED=true holds every message, whatever the switch says, and the page says so', async () => {
    const before = smtp.messages.length;
    const r = await api(
      'POST',
      '/api/v1/messages',
      stagingSend,
      { to: 'real-user@example.net', subject: 'Staging', text: 't' },
      {},
      staging,
    );
    expect(r.status, r.text).toBe(202);
    expect(r.body.status).toBe('held');
    expect(await inDeliverySchedule(staging, r.body.id as string)).toBe(false);
    expect(
      (await api('GET', `/api/v1/messages/${r.body.id as string}`, stagingSend, undefined, {}, staging)).body.status,
    ).toBe('held');
    expect(smtp.messages.length).toBe(before);
    const session = await staging.browserSession('admin');
    const list = await session.get('/admin/smtp-servers');
    expect(list.text).toContain('MAILGATE_SEND_DISABLED');
    expect(list.text).toContain('id="outgoing-state">disabled<');
    // The switch cannot override the variable: switched on, a new message is still held.
    expect((await session.postForm('/admin/smtp-servers/outgoing', { enabled: 'true' })).res.status).toBe(303);
    const still = await api(
      'POST',
      '/api/v1/messages',
      stagingSend,
      { to: 'real-user-2@example.net', subject: 'Staging', text: 't' },
      {},
      staging,
    );
    expect(still.body.status).toBe('held');
    expect(await inDeliverySchedule(staging, still.body.id as string)).toBe(false);
    expect(
      (await api('GET', `/api/v1/messages/${still.body.id as string}`, stagingSend, undefined, {}, staging)).body
        .status,
    ).toBe('held');
    expect(
      (await api('GET', `/api/v1/messages/${r.body.id as string}`, stagingSend, undefined, {}, staging)).body.status,
    ).toBe('held');
    expect(smtp.messages.length).toBe(before);
  });
});

describe('storage: secrets never in plaintext on disk, API keys only as hashes', () => {
  it('the data folder holds no API key, password, client secret or token in plaintext', async () => {
    const created = await api('POST', '/api/v1/api-keys', adminKey, { name: 'at rest', scopes: ['send'] });
    const needles = [adminKey, sendKey, created.body.key as string, RELAY_PASSWORD, CLIENT_SECRET];
    const files: string[] = [];
    const walk = async (dir: string) => {
      for (const entry of await readdir(dir, { withFileTypes: true })) {
        const full = path.join(dir, entry.name);
        if (entry.isDirectory()) await walk(full);
        else if (entry.isFile()) files.push(full);
      }
    };
    await walk(app.config.MAILGATE_DATA_DIR);
    expect(files.length).toBeGreaterThan(0);
    for (const file of files) {
      const text = await readFile(file, 'latin1');
      for (const needle of needles) expect(text.includes(needle), `${path.basename(file)} holds a secret`).toBe(false);
    }
  });
});

describe.skipIf(!redisUrlForTests())(
  'Redis: instances behind a load balancer share sessions, keys, the queue and the switch',
  () => {
    let a: TestApp;
    let b: TestApp;

    beforeAll(async () => {
      a = await startTestApp({ store: 'redis', workers: false });
      b = await startTestApp({ shareWith: a, workers: true });
    }, 30_000);

    afterAll(async () => {
      await b?.close();
      await a?.close();
    });

    it('a login on one instance is a session on the other; a message queued on one is sent by the other; the switch holds on both', async () => {
      const onA = await a.browserSession('admin');
      const onB = new HttpSession(b.url);
      for (const [k, v] of onA.cookies) onB.cookies.set(k, v);
      expect((await onB.get('/admin/mail-queue')).res.status).toBe(200);

      const key = await a.apiKey(['admin', 'send']);
      const server = await api(
        'POST',
        '/api/v1/smtp-servers',
        key,
        {
          name: 'Shared relay',
          fromAddress: 'shared@example.com',
          host: '127.0.0.1',
          port: smtp.port,
          authMethod: 'basic',
          username: 'relay',
          password: RELAY_PASSWORD,
          isDefault: true,
        },
        {},
        b,
      );
      expect(server.status, server.text).toBe(201);
      const queued = await api(
        'POST',
        '/api/v1/messages',
        key,
        { to: 'shared@example.net', subject: 'Across instances', text: 't' },
        {},
        a,
      );
      expect(queued.status).toBe(202);
      await waitForStatus(queued.body.id as string, 'sent', 10_000, a, key);

      expect(
        (await onA.postForm('/admin/smtp-servers/outgoing', { enabled: 'false', confirmed: 'yes' })).res.status,
      ).toBe(303);
      const held = await api(
        'POST',
        '/api/v1/messages',
        key,
        { to: 'shared-held@example.net', subject: 'Held across instances', text: 't' },
        {},
        b,
      );
      expect(held.body.status).toBe('held');
    });
  },
);
