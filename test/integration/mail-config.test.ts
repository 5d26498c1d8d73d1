import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/log.js';
import { messageInput } from '../../src/mail/compose.js';
import type { ResolvedServer } from '../../src/mail/servers.js';
import { createMailTransport } from '../../src/mail/transport.js';
import { eventually, startMailHarness, TEST_ACTOR } from '../fakes/mail-services.js';
import { startTestSmtp, type TestSmtp } from '../fakes/smtp-server.js';

// Configuration from outside the UI: servers from MAILGATE_SMTP_SERVERS_FILE (secrets by reference, read-only,
// never returned), the MAILGATE_SMTP_HOST/PORT/LOCALHOST overrides, MAILGATE_SEND_DISABLED, MAILGATE_MAIL_DEBUG.

const SECRET = 'file-defined secret 42';
let smtp: TestSmtp;
let dir: string;

beforeAll(async () => {
  smtp = await startTestSmtp({ starttls: false, allowInsecureAuth: true, auth: { user: 'filer', pass: SECRET } });
  dir = await mkdtemp(path.join(os.tmpdir(), 'mailgate-cfg-'));
});
afterAll(async () => {
  await smtp.close();
  await rm(dir, { recursive: true, force: true });
});

describe('servers file', () => {
  it('loads servers with secrets from the environment and a file; read-only; secrets never returned; sends', async () => {
    const secretFile = path.join(dir, 'relay-password');
    await writeFile(secretFile, `${SECRET}\n`);
    const file = path.join(dir, 'servers.json');
    await writeFile(
      file,
      JSON.stringify({
        servers: [
          {
            id: 'relay',
            name: 'Env relay',
            fromAddress: 'file@example.com',
            host: '127.0.0.1',
            port: smtp.port,
            authMethod: 'basic',
            username: 'filer',
            passwordEnv: 'TEST_RELAY_PASSWORD',
            isDefault: true,
          },
          {
            id: 'relay2',
            name: 'File relay',
            fromAddress: 'file@example.com',
            host: '127.0.0.1',
            port: smtp.port,
            authMethod: 'basic',
            username: 'filer',
            passwordFile: secretFile,
          },
        ],
      }),
    );
    process.env.TEST_RELAY_PASSWORD = SECRET;
    const h = await startMailHarness({ env: { MAILGATE_SMTP_SERVERS_FILE: file }, queue: { pollMs: 20 } });
    try {
      const list = await h.mail.servers.list();
      expect(list.map((s) => [s.id, s.source, s.readOnly, s.hasPassword])).toEqual([
        ['relay', 'file', true, true],
        ['relay2', 'file', true, true],
      ]);
      expect(JSON.stringify(list)).not.toContain(SECRET);
      await expect(h.mail.servers.update('relay', { name: 'x' }, { actor: TEST_ACTOR })).rejects.toMatchObject({
        code: 'read_only',
      });
      await expect(h.mail.servers.remove('relay', { actor: TEST_ACTOR })).rejects.toMatchObject({ code: 'read_only' });
      expect(await h.mail.servers.defaultServerId()).toBe('relay');
      expect((await h.mail.test('relay2')).ok).toBe(true);
      const { id } = await h.mail.queue.enqueue(messageInput.parse({ to: 'x@example.net', subject: 's', text: 't' }));
      await eventually(
        () => h.mail.queue.get(id),
        (m) => m.status === 'sent',
        5000,
      );
      expect(smtp.messages.at(-1)).toMatchObject({ authUser: 'filer', from: 'file@example.com' });
      expect(await h.store.list('smtp_servers')).toEqual([]);
    } finally {
      delete process.env.TEST_RELAY_PASSWORD;
      await h.close();
    }
  });

  it('reports every problem of a bad file at once', async () => {
    const file = path.join(dir, 'bad.json');
    await writeFile(
      file,
      JSON.stringify([
        {
          id: 'a',
          name: 'A',
          fromAddress: 'a@example.com',
          host: 'smtp.example.com',
          authMethod: 'basic',
          username: 'u',
          passwordEnv: 'NOT_SET_ANYWHERE_X',
        },
      ]),
    );
    await expect(startMailHarness({ env: { MAILGATE_SMTP_SERVERS_FILE: file } })).rejects.toThrow(
      /NOT_SET_ANYWHERE_X is not set[\s\S]*authentication needs TLS/,
    );
  });
});

describe('environment overrides', () => {
  it('MAILGATE_SMTP_HOST/PORT win over the form and MAILGATE_SMTP_LOCALHOST names EHLO', async () => {
    const h = await startMailHarness({
      env: {
        MAILGATE_SMTP_HOST: '127.0.0.1',
        MAILGATE_SMTP_PORT: String(smtp.port),
        MAILGATE_SMTP_LOCALHOST: 'mailgate.example.org',
      },
      queue: { pollMs: 20 },
    });
    try {
      const view = await h.mail.servers.create(
        {
          name: 'Form',
          fromAddress: 'form@example.com',
          host: 'smtp.unreachable.example',
          port: 2525,
          authMethod: 'basic',
          username: 'filer',
          password: SECRET,
          tls: true,
        },
        { actor: TEST_ACTOR },
      );
      expect(view.overrides).toEqual(['MAILGATE_SMTP_HOST', 'MAILGATE_SMTP_PORT', 'MAILGATE_SMTP_LOCALHOST']);
      expect(view.effective).toMatchObject({ host: '127.0.0.1', port: smtp.port, ehloName: 'mailgate.example.org' });
      expect(view.host).toBe('smtp.unreachable.example');
      // tls is on (required for a non-loopback form host) but the sink has no STARTTLS: it must fail hard.
      const r = await h.mail.test(view.id);
      expect(r).toMatchObject({ ok: false, code: 'starttls_unavailable' });
      expect(r.transcript.some((l) => l === 'C: EHLO mailgate.example.org')).toBe(true);
    } finally {
      await h.close();
    }
  });
});

describe('MAILGATE_SEND_DISABLED', () => {
  it('holds every message even with the switch on', async () => {
    const h = await startMailHarness({ env: { MAILGATE_SEND_DISABLED: 'true' }, queue: { pollMs: 20 } });
    try {
      const serverId = await h.addServer({
        host: '127.0.0.1',
        port: smtp.port,
        authMethod: 'basic',
        username: 'filer',
        password: SECRET,
      });
      const before = smtp.messages.length;
      const r = await h.mail.queue.enqueue({
        ...messageInput.parse({ to: 'x@example.net', subject: 's', text: 't' }),
        serverId,
      });
      expect(r.status).toBe('held');
      await h.mail.servers.setOutgoingEnabled(true, { actor: TEST_ACTOR });
      await new Promise((res) => setTimeout(res, 200));
      expect((await h.mail.queue.get(r.id)).status).toBe('held');
      expect(smtp.messages.length).toBe(before);
      expect((await h.mail.servers.settings()).disabledByEnvironment).toBe(true);
    } finally {
      await h.close();
    }
  });
});

describe('MAILGATE_MAIL_DEBUG', () => {
  it('logs the SMTP conversation through the redacting logger, credentials masked', async () => {
    const lines: string[] = [];
    const stream = new PassThrough();
    stream.on('data', (d: Buffer) => lines.push(...d.toString().split('\n').filter(Boolean)));
    const transport = createMailTransport({ log: createLogger({ level: 'debug', destination: stream }), debug: true });
    const server: ResolvedServer = {
      id: 'dbg',
      version: 1,
      source: 'ui',
      name: 'Debug',
      fromAddress: 'd@example.com',
      emailPrefix: null,
      protocol: 'smtp',
      host: '127.0.0.1',
      port: smtp.port,
      timeoutMs: 5000,
      tls: false,
      authMethod: 'basic',
      oauthIntegrationId: null,
      username: 'filer',
      password: SECRET,
      passwordVersion: 1,
      ehloName: null,
    };
    try {
      await transport.send(server, {
        envelope: { from: 'd@example.com', to: ['x@example.net'] },
        from: { name: 'D', address: 'd@example.com' },
        to: ['x@example.net'],
        cc: [],
        subject: 's',
        text: 't',
        html: '<p>t</p>',
      });
    } finally {
      await transport.close();
    }
    const all = lines.join('\n');
    expect(all).toMatch(/RCPT TO:<x@example\.net>/);
    expect(all).toMatch(/AUTH PLAIN/);
    expect(all).not.toContain(SECRET);
    expect(all).not.toContain(Buffer.from(`\0filer\0${SECRET}`).toString('base64'));
  });
});
