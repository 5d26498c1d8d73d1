import type { LookupAddress } from 'node:dns';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isAppError } from '../../src/errors.js';
import { createLogger } from '../../src/log.js';
import type { ResolvedServer } from '../../src/mail/servers.js';
import { createMailTransport } from '../../src/mail/transport.js';
import { testConnection as verifyServer } from '../../src/mail/verify.js';
import { systemResolve, type ResolveAll } from '../../src/net/connect.js';
import { createEgressPolicy } from '../../src/net/egress.js';
import { createEgressFetch } from '../../src/net/fetch.js';
import { startTestApp, type TestApp } from '../fakes/app.js';
import { startTestSmtp, type TestSmtp } from '../fakes/smtp-server.js';
import { resolvedServerForTests } from '../fakes/mail-services.js';

// The egress policy on a real mailgate: SMTP hosts and custom OAuth endpoints typed in by admins reach only
// allowed addresses, judged on the address each connection goes to. A scripted name server (the injected
// resolver) plays the attacker's DNS, answering whatever the test says at the moment of the connection.

const answers = new Map<string, string>();
const resolve: ResolveAll = (hostname, callback) => {
  const address = answers.get(hostname);
  if (address === undefined) return systemResolve(hostname, callback);
  const found: LookupAddress[] = [{ address, family: net.isIPv6(address) ? 6 : 4 }];
  setImmediate(() => callback(null, found));
};

let smtp: TestSmtp;

async function api(app: TestApp, key: string, method: string, path: string, body?: unknown) {
  const res = await fetch(`${app.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${key}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  return { status: res.status, body: (text ? JSON.parse(text) : {}) as Record<string, unknown>, text };
}

async function addServer(app: TestApp, key: string, host: string, port: number): Promise<string> {
  const created = await api(app, key, 'POST', '/api/v1/smtp-servers', {
    name: `${host}:${port}`,
    fromAddress: 'notify@example.com',
    host,
    port,
    tls: false,
    authMethod: 'none',
  });
  expect(created.status, created.text).toBe(201);
  return created.body.id as string;
}

async function testConnection(app: TestApp, key: string, host: string, port: number) {
  const id = await addServer(app, key, host, port);
  const r = await api(app, key, 'POST', `/api/v1/smtp-servers/${id}/test`);
  expect(r.status, r.text).toBe(200);
  return r;
}

async function waitForStatus(app: TestApp, key: string, id: string, status: string): Promise<Record<string, unknown>> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const r = await api(app, key, 'GET', `/api/v1/messages/${id}`);
    if (r.body.status === status) return r.body;
    if (Date.now() > deadline)
      throw new Error(`message ${id} is ${String(r.body.status)}, expected ${status}: ${r.text}`);
    await new Promise((res) => setTimeout(res, 50));
  }
}

beforeAll(async () => {
  smtp = await startTestSmtp({ starttls: false });
});
afterAll(async () => {
  await smtp?.close();
});

describe('NODE_ENV=production without MAILGATE_EGRESS_ALLOW', () => {
  let app: TestApp;
  let admin: string;
  let sender: string;

  beforeAll(async () => {
    app = await startTestApp({
      env: { NODE_ENV: 'production', MAILGATE_QUEUE_RETRY_BASE_MS: '50' },
      workers: true,
      egressResolve: resolve,
    });
    admin = await app.apiKey(['admin']);
    sender = await app.apiKey(['send']);
  });
  afterAll(async () => {
    await app?.close();
  });

  it('Test connection refuses loopback and metadata addresses without connecting, naming MAILGATE_EGRESS_ALLOW', async () => {
    const before = smtp.connections;
    const loopback = await testConnection(app, admin, '127.0.0.1', smtp.port);
    expect(loopback.body).toMatchObject({ ok: false, code: 'egress_denied' });
    expect(loopback.body.error).toMatch(/127\.0\.0\.1.*loopback/);
    expect(loopback.body.hint).toMatch(/MAILGATE_EGRESS_ALLOW/);
    for (const host of ['169.254.169.254', 'metadata.google.internal', '::ffff:169.254.169.254']) {
      const metadata = await testConnection(app, admin, host, 80);
      expect(metadata.body, host).toMatchObject({ ok: false, code: 'egress_denied' });
      expect(metadata.body.error, host).toMatch(/metadata/);
      expect(metadata.body.durationMs as number, host).toBeLessThan(1000);
    }
    expect(smtp.connections).toBe(before);
  });

  it('judges the address a name resolves to when connecting (a public-looking name pointing inward is refused)', async () => {
    const before = smtp.connections;
    answers.set('smtp.rebind.test', '127.0.0.1');
    const r = await testConnection(app, admin, 'smtp.rebind.test', smtp.port);
    expect(r.body).toMatchObject({ ok: false, code: 'egress_denied' });
    expect(r.body.error).toContain('smtp.rebind.test (127.0.0.1)');
    const viaLocalhost = await testConnection(app, admin, 'localhost', smtp.port);
    expect(viaLocalhost.body).toMatchObject({ ok: false, code: 'egress_denied' });
    expect(smtp.connections).toBe(before);
  });

  it('a message to a refused host fails permanently at once with egress_denied', async () => {
    const serverId = await addServer(app, admin, '169.254.169.254', 25);
    const sent = await api(app, sender, 'POST', '/api/v1/messages', {
      serverId,
      to: 'someone@example.net',
      subject: 'metadata',
      text: 'hi',
    });
    expect(sent.status, sent.text).toBe(202);
    const failed = await waitForStatus(app, sender, sent.body.id as string, 'failed');
    expect(failed).toMatchObject({ attempts: 1, lastError: { code: 'egress_denied' } });
    expect((failed.lastError as { hint: string }).hint).toMatch(/MAILGATE_EGRESS_ALLOW cannot open/);
  });

  it('a custom OAuth integration cannot reach loopback or metadata endpoints (discovery and token endpoint)', async () => {
    const requests: string[] = [];
    const idp = http.createServer((req, res) => {
      requests.push(req.url ?? '');
      res.end('{}');
    });
    await new Promise<void>((r) => idp.listen(0, '127.0.0.1', r));
    try {
      const port = (idp.address() as AddressInfo).port;
      const viaIssuer = await api(app, admin, 'POST', '/api/v1/oauth-integrations', {
        name: 'loopback idp',
        provider: 'custom',
        clientId: 'c',
        clientSecret: 's',
        issuer: `https://127.0.0.1:${port}`,
      });
      expect(viaIssuer.status, viaIssuer.text).toBe(201);
      const discovery = await api(
        app,
        admin,
        'POST',
        `/api/v1/oauth-integrations/${viaIssuer.body.id as string}/rotate-secret`,
        { clientSecret: 'new secret' },
      );
      expect(discovery.status, discovery.text).toBe(403);
      expect(discovery.body.error).toMatchObject({ code: 'egress_denied' });
      expect((discovery.body.error as { message: string }).message).toMatch(/127\.0\.0\.1.*MAILGATE_EGRESS_ALLOW/);

      const viaEndpoints = await api(app, admin, 'POST', '/api/v1/oauth-integrations', {
        name: 'metadata idp',
        provider: 'custom',
        clientId: 'c',
        clientSecret: 's',
        authorizationEndpoint: 'https://idp.example.com/authorize',
        tokenEndpoint: 'https://169.254.169.254/latest/api/token',
      });
      expect(viaEndpoints.status, viaEndpoints.text).toBe(201);
      const token = await api(
        app,
        admin,
        'POST',
        `/api/v1/oauth-integrations/${viaEndpoints.body.id as string}/rotate-secret`,
        { clientSecret: 'new secret' },
      );
      expect(token.status, token.text).toBe(403);
      expect(token.body.error).toMatchObject({ code: 'egress_denied' });
      expect((token.body.error as { message: string }).message).toMatch(/169\.254\.169\.254.*metadata/);

      // Authorize on the server page discovers the issuer first: refused with a page that says why.
      const server = await app.services.mail.servers.create(
        {
          name: 'oauth via loopback idp',
          fromAddress: 'alice@example.com',
          host: 'smtp.example.com',
          port: 587,
          protocol: 'smtp',
          tls: true,
          authMethod: 'oauth2',
          oauthIntegrationId: viaIssuer.body.id as string,
        },
        { actor: { type: 'system', id: 'test' } },
      );
      const browser = await app.browserSession('sysadmin');
      const pressed = await browser.postForm(`/admin/smtp-servers/${server.id}/authorize`);
      expect(pressed.res.status).toBe(403);
      expect(pressed.text).toMatch(/127\.0\.0\.1/);
      expect(pressed.text).toContain('MAILGATE_EGRESS_ALLOW');
      expect(requests).toEqual([]);
    } finally {
      await new Promise<void>((r) => idp.close(() => r()));
    }
  });
});

describe('NODE_ENV=production with MAILGATE_EGRESS_ALLOW', () => {
  let app: TestApp;
  let admin: string;
  let sender: string;

  beforeAll(async () => {
    app = await startTestApp({
      env: { NODE_ENV: 'production', MAILGATE_EGRESS_ALLOW: '127.0.0.1, relay.corp.test, 169.254.169.254' },
      workers: true,
      egressResolve: resolve,
    });
    admin = await app.apiKey(['admin']);
    sender = await app.apiKey(['send']);
  });
  afterAll(async () => {
    await app?.close();
  });

  it('an allow-listed loopback address works for Test connection and for delivery', async () => {
    const test = await testConnection(app, admin, '127.0.0.1', smtp.port);
    expect(test.body, test.text).toMatchObject({ ok: true });
    const serverId = await addServer(app, admin, '127.0.0.1', smtp.port);
    const delivered = smtp.messages.length;
    const sent = await api(app, sender, 'POST', '/api/v1/messages', {
      serverId,
      to: 'someone@example.net',
      subject: 'allowed',
      text: 'hi',
    });
    await waitForStatus(app, sender, sent.body.id as string, 'sent');
    expect(smtp.messages.length).toBe(delivered + 1);
  });

  it('a name rebound from an allowed address to a metadata address is refused on the next connection', async () => {
    answers.set('mx.rebind.test', '127.0.0.1');
    const serverId = await addServer(app, admin, 'mx.rebind.test', smtp.port);
    expect((await api(app, admin, 'POST', `/api/v1/smtp-servers/${serverId}/test`)).body).toMatchObject({ ok: true });
    answers.set('mx.rebind.test', '169.254.169.254');
    const rebound = await api(app, admin, 'POST', `/api/v1/smtp-servers/${serverId}/test`);
    expect(rebound.body).toMatchObject({ ok: false, code: 'egress_denied' });
    expect(rebound.body.error).toContain('mx.rebind.test (169.254.169.254)');
  });

  it('a listed host name may resolve into private space; the list never opens metadata addresses', async () => {
    answers.set('relay.corp.test', '127.0.0.2');
    // 127.0.0.2 is not listed, the name is: the connection is made (and refused by the kernel, nothing listens there).
    const listed = await testConnection(app, admin, 'relay.corp.test', smtp.port);
    expect(listed.body).toMatchObject({ ok: false, code: 'connection_refused' });
    answers.set('other.corp.test', '127.0.0.2');
    expect((await testConnection(app, admin, 'other.corp.test', smtp.port)).body).toMatchObject({
      ok: false,
      code: 'egress_denied',
    });
    const metadata = await testConnection(app, admin, '169.254.169.254', 80);
    expect(metadata.body).toMatchObject({ ok: false, code: 'egress_denied' });
  });
});

describe('Test connection to a peer that is not SMTP (development)', () => {
  let app: TestApp;
  let admin: string;
  let banner: net.Server;

  beforeAll(async () => {
    banner = net.createServer((socket) => socket.end('SSH-2.0-OpenSSH_9.6p1 internal-build-host-7\r\n'));
    await new Promise<void>((r) => banner.listen(0, '127.0.0.1', r));
    app = await startTestApp({ egressResolve: resolve });
    admin = await app.apiKey(['admin']);
  });
  afterAll(async () => {
    await app?.close();
    await new Promise<void>((r) => banner.close(() => r()));
  });

  it('says "not an SMTP server" and repeats none of its bytes', async () => {
    const r = await testConnection(app, admin, '127.0.0.1', (banner.address() as AddressInfo).port);
    expect(r.body).toMatchObject({ ok: false, code: 'not_smtp' });
    expect(r.body.error).toMatch(/not an SMTP server/);
    expect(r.text).not.toMatch(/SSH-2\.0|OpenSSH|internal-build-host/);
    expect((r.body.transcript as string[]).some((l) => /not an SMTP server/.test(l))).toBe(true);
  });

  it('loopback is allowed outside production; metadata addresses are not', async () => {
    expect((await testConnection(app, admin, '127.0.0.1', smtp.port)).body).toMatchObject({ ok: true });
    expect((await testConnection(app, admin, '169.254.169.254', 80)).body).toMatchObject({
      ok: false,
      code: 'egress_denied',
    });
  });
});

describe('the egress-checked fetch of custom OAuth endpoints', () => {
  let server: http.Server;
  let port: number;
  const seen: { method: string; body: string; type: string | undefined }[] = [];

  beforeAll(async () => {
    server = http.createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        seen.push({ method: req.method ?? '', body, type: req.headers['content-type'] });
        if (req.url === '/slow') return;
        res.writeHead(req.url === '/moved' ? 302 : 200, {
          'content-type': 'application/json',
          ...(req.url === '/moved' ? { location: 'http://169.254.169.254/' } : {}),
        });
        res.end(JSON.stringify({ ok: true }));
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as AddressInfo).port;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  });

  const fetchWith = (allow: string[]) =>
    createEgressFetch({ policy: createEgressPolicy({ production: true, allow }), resolve });

  it('refuses a loopback endpoint in production before any request, and reaches it once listed', async () => {
    const count = seen.length;
    const refused = await fetchWith([])(`http://127.0.0.1:${port}/token`).catch((e: unknown) => e);
    expect(isAppError(refused) && refused.code).toBe('egress_denied');
    expect(seen.length).toBe(count);

    const allowed = await fetchWith(['127.0.0.0/8'])(`http://127.0.0.1:${port}/token`, {
      method: 'POST',
      body: new URLSearchParams({ grant_type: 'refresh_token' }),
    });
    expect(allowed.status).toBe(200);
    expect(await allowed.json()).toEqual({ ok: true });
    expect(seen.at(-1)).toEqual({
      method: 'POST',
      body: 'grant_type=refresh_token',
      type: 'application/x-www-form-urlencoded;charset=UTF-8',
    });
  });

  it('checks the resolved address of every request (rebinding) and never follows a redirect', async () => {
    const guarded = fetchWith(['127.0.0.1']);
    answers.set('idp.rebind.test', '127.0.0.1');
    expect((await guarded(`http://idp.rebind.test:${port}/.well-known/openid-configuration`)).status).toBe(200);
    answers.set('idp.rebind.test', '10.9.9.9');
    const rebound = await guarded(`http://idp.rebind.test:${port}/.well-known/openid-configuration`).catch(
      (e: unknown) => e,
    );
    expect(isAppError(rebound) && rebound.message).toMatch(/idp\.rebind\.test \(10\.9\.9\.9\).*private/);
    const moved = await guarded(`http://127.0.0.1:${port}/moved`, { redirect: 'manual' });
    expect(moved.status).toBe(302);
  });

  it('ends a request when its signal fires, with the signal reason', async () => {
    const slow = await fetchWith(['127.0.0.1'])(`http://127.0.0.1:${port}/slow`, {
      signal: AbortSignal.timeout(50),
    }).catch((e: unknown) => e);
    expect((slow as Error).name).toBe('TimeoutError');
  });
});

describe('TLS over the egress-checked socket', () => {
  const server = (partial: Partial<ResolvedServer> & { host: string; port: number }) =>
    resolvedServerForTests({ id: 'srv_tls', name: 'TLS', ...partial });

  let starttls: TestSmtp;
  let implicit: TestSmtp;
  beforeAll(async () => {
    starttls = await startTestSmtp();
    implicit = await startTestSmtp({ secure: true });
  });
  afterAll(async () => {
    await starttls?.close();
    await implicit?.close();
  });

  it('STARTTLS and implicit TLS still verify the certificate against the host name as entered', async () => {
    const transport = createMailTransport({
      log: createLogger({ level: 'silent' }),
      tlsCa: [starttls.ca, implicit.ca],
      egress: { policy: createEgressPolicy({ production: true, allow: ['127.0.0.1'] }), resolve },
    });
    try {
      // The name resolves to the right address, but the certificate is not for it: refused as before.
      answers.set('imposter.rebind.test', '127.0.0.1');
      const wrongName = await verifyServer(
        transport,
        server({ host: 'imposter.rebind.test', port: implicit.port, protocol: 'smtps', tls: false }),
      );
      expect(wrongName).toMatchObject({ ok: false, code: 'tls_untrusted' });
      const viaSmtps = await verifyServer(
        transport,
        server({ host: '127.0.0.1', port: implicit.port, protocol: 'smtps', tls: false }),
      );
      expect(viaSmtps.ok, viaSmtps.transcript.join('\n')).toBe(true);
      const viaStarttls = await verifyServer(transport, server({ host: '127.0.0.1', port: starttls.port }));
      expect(viaStarttls.ok, viaStarttls.transcript.join('\n')).toBe(true);
      expect(viaStarttls.transcript.some((l) => l.startsWith('C: STARTTLS'))).toBe(true);
    } finally {
      await transport.close();
    }
  });
});
