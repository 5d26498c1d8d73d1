import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TEST_ACTOR } from '../fakes/oauth-setup.js';
import { attachmentOf, headerBlock, RawSmtp, startSubmissionRig, type SubmissionRig } from '../fakes/submission-rig.js';

/**
 * Apps that only speak SMTP: three clients not written here (nodemailer, Python's smtplib, curl) submit over
 * STARTTLS with an API key as the password; the message leaves mailgate over XOAUTH2 (a token from the local
 * OpenID provider, checked by the sink by introspection) to the RCPT TO recipients, attachments byte-identical,
 * Bcc gone, the server's prefix on the subject, and shows in the API as `source: "smtp"`.
 */

const run = promisify(execFile);
let rig: SubmissionRig;
let key: string;
let tmp: string;

async function waitForSink(count: number) {
  await rig.sink.waitFor(count, 20_000);
  return rig.sink.messages[count - 1]!;
}

beforeAll(async () => {
  rig = await startSubmissionRig({});
  await rig.app.services.mail.servers.update(rig.serverId, { emailPrefix: '[mg]' }, { actor: TEST_ACTOR });
  key = await rig.key();
  tmp = await mkdtemp(path.join(os.tmpdir(), 'mailgate-submission-'));
});
afterAll(async () => {
  await rig?.close();
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

describe('the SMTP submission front with real clients', () => {
  it('nodemailer: STARTTLS, AUTH LOGIN with the key; delivered over XOAUTH2 to RCPT TO, attachments intact, no Bcc', async () => {
    const binary = randomBytes(60_000);
    const image = randomBytes(3_000);
    const before = rig.sink.messages.length;
    const client = rig.client(key, 'jira');
    const info = await client.sendMail({
      from: 'Issue Tracker <alice@example.test>',
      to: 'bob@example.test',
      cc: 'carol@example.test',
      bcc: 'dave@example.test',
      subject: 'Build 42 ✓ passed',
      text: 'All green.',
      html: '<p>All green. <img src="cid:logo"></p>',
      attachments: [
        { filename: 'report.bin', content: binary },
        { filename: 'logo.png', content: image, cid: 'logo' },
      ],
    });
    client.close();
    expect(info.response).toMatch(/^250 2\.0\.0 Ok: queued as msg_/);
    const id = /queued as (\S+)/.exec(String(info.response))![1]!;
    const got = await waitForSink(before + 1);
    expect(got.user).toBe('alice@example.test'); // XOAUTH2 with the authorized mailbox
    expect(got.from).toBe('alice@example.test');
    expect(got.to.sort()).toEqual(['bob@example.test', 'carol@example.test', 'dave@example.test']);
    const headers = headerBlock(got.raw);
    expect(headers).not.toMatch(/^bcc:/im);
    expect(headers).toMatch(/^Subject: \[mg\] /m);
    expect(headers).toMatch(/^From: Issue Tracker <alice@example\.test>$/m);
    expect(attachmentOf(got.raw, 'report.bin').equals(binary)).toBe(true);
    expect(attachmentOf(got.raw, 'logo.png').equals(image)).toBe(true);

    // The sink has it; the outcome write follows the server's 250.
    let view: Record<string, unknown> = {};
    for (let i = 0; i < 100 && view.status !== 'sent'; i++) {
      const res = await fetch(`${rig.app.url}/api/v1/messages/${id}`, { headers: { authorization: `Bearer ${key}` } });
      view = (await res.json()) as Record<string, unknown>;
      if (view.status !== 'sent') await new Promise((r) => setTimeout(r, 100));
    }
    expect(view).toMatchObject({ id, source: 'smtp', subject: 'Build 42 ✓ passed', status: 'sent' });
    expect(view.size).toBeGreaterThan(60_000);
    expect((view.recipients as { address: string; kind: string }[]).map((r) => [r.address, r.kind])).toEqual([
      ['bob@example.test', 'to'],
      ['carol@example.test', 'cc'],
      ['dave@example.test', 'bcc'],
    ]);
  });

  it("a From the server may not send as becomes the server's address, the original the Reply-To", async () => {
    const before = rig.sink.messages.length;
    const client = rig.client(key);
    await client.sendMail({
      from: '"Nagios" <nagios@monitoring.example>',
      to: 'ops@example.test',
      subject: 'DOWN',
      text: 'host down',
    });
    client.close();
    const got = await waitForSink(before + 1);
    const headers = headerBlock(got.raw);
    expect(headers).toMatch(/^From: "?Nagios"? <alice@example\.test>$/m);
    expect(headers).toMatch(/^Reply-To: "?Nagios"? <nagios@monitoring\.example>$/m);
    expect(got.from).toBe('alice@example.test');
  });

  it("Python's smtplib: starttls, login, send_message with an attachment", async () => {
    const payload = randomBytes(20_000);
    await writeFile(path.join(tmp, 'payload.bin'), payload);
    const script = `
import os, smtplib, ssl
from email.message import EmailMessage
m = EmailMessage()
m['From'] = 'CI <alice@example.test>'
m['To'] = 'bob@example.test'
m['Subject'] = 'pipeline failed'
m.set_content('see attachment')
m.add_attachment(open(os.environ['PAYLOAD'], 'rb').read(), maintype='application', subtype='octet-stream', filename='log.bin')
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
with smtplib.SMTP('127.0.0.1', int(os.environ['PORT']), timeout=20) as s:
    s.starttls(context=ctx)
    s.login('jenkins', os.environ['KEY'])
    s.send_message(m, to_addrs=['bob@example.test', 'erin@example.test'])
print('sent')
`;
    const before = rig.sink.messages.length;
    const out = await run('python3', ['-c', script], {
      env: { ...process.env, PORT: String(rig.port), KEY: key, PAYLOAD: path.join(tmp, 'payload.bin') },
    });
    expect(out.stdout.trim()).toBe('sent');
    const got = await waitForSink(before + 1);
    expect(got.to.sort()).toEqual(['bob@example.test', 'erin@example.test']);
    expect(attachmentOf(got.raw, 'log.bin').equals(payload)).toBe(true);
  });

  it('curl --ssl-reqd -k --mail-from --mail-rcpt --upload-file', async () => {
    const file = path.join(tmp, 'curl.eml');
    await writeFile(
      file,
      'From: Grafana <alice@example.test>\r\nTo: bob@example.test\r\nSubject: curl smoke test\r\n\r\nhello from curl\r\n',
    );
    const before = rig.sink.messages.length;
    await run('curl', [
      '-sS',
      '--ssl-reqd',
      '-k',
      '--mail-from',
      'grafana@example.test',
      '--mail-rcpt',
      'bob@example.test',
      '--upload-file',
      file,
      '--user',
      `grafana:${key}`,
      `smtp://127.0.0.1:${rig.port}`,
    ]);
    const got = await waitForSink(before + 1);
    expect(got.raw).toContain('hello from curl');
    expect(headerBlock(got.raw)).toMatch(/^Subject: \[mg\] curl smoke test$/m);
  });

  it('8BITMIME and SMTPUTF8: UTF-8 header and body bytes leave mailgate unchanged', async () => {
    const before = rig.sink.messages.length;
    const c = await RawSmtp.connect(rig.port);
    await c.login(key);
    expect(await c.command('MAIL FROM:<a@example.test> BODY=8BITMIME SMTPUTF8')).toMatch(/^250/);
    await c.command('RCPT TO:<bob@example.test>');
    await c.command('DATA');
    const message = Buffer.from(
      'From: Jörg <alice@example.test>\r\nSubject: Grüße ✓\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nTschüß, 日本語\r\n',
      'utf8',
    );
    await c.write(message);
    expect(await c.command('.')).toMatch(/^250 /);
    c.destroy();
    const got = await waitForSink(before + 1);
    expect(got.raw).toContain('From: Jörg <alice@example.test>');
    expect(got.raw).toContain('Subject: [mg] Grüße ✓');
    expect(got.raw).toContain('\r\n\r\nTschüß, 日本語\r\n');
  });

  it('a message from the JSON API shows source "api"', async () => {
    const res = await fetch(`${rig.app.url}/api/v1/messages`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ to: 'bob@example.test', subject: 'from the API', text: 'x' }),
    });
    const { id } = (await res.json()) as { id: string };
    const view = (await (
      await fetch(`${rig.app.url}/api/v1/messages/${id}`, { headers: { authorization: `Bearer ${key}` } })
    ).json()) as Record<string, unknown>;
    expect(view).toMatchObject({ source: 'api', subject: 'from the API' });
    expect(view.size).toBeGreaterThan(0);
  });

  it('AUTH is refused before STARTTLS except from loopback; the listener offers SIZE, PIPELINING, 8BITMIME, SMTPUTF8', async () => {
    const c = await RawSmtp.connect(rig.port);
    const ehlo = await c.command('EHLO test.example');
    for (const ext of ['PIPELINING', '8BITMIME', 'SMTPUTF8', 'STARTTLS', 'AUTH PLAIN LOGIN'])
      expect(ehlo).toContain(ext);
    expect(ehlo).toContain(`SIZE ${rig.app.config.MAILGATE_MAX_MESSAGE_BYTES}`);
    // From loopback (this test), AUTH without TLS is allowed: a local relay's traffic never leaves the machine.
    expect(await c.command(`AUTH PLAIN ${Buffer.from(`\0x\0${key}`).toString('base64')}`)).toMatch(/^235/);
    c.destroy();
  });

  it('the queue page shows a submitted message like any other, with its source and size, in English and Japanese', async () => {
    // A paused server holds the message, so it stays on the page (sent messages are not listed).
    await rig.app.services.mail.servers.pause(rig.serverId, { reason: 'test', code: 'test' });
    const c = await RawSmtp.connect(rig.port);
    await c.login(key);
    await c.command('MAIL FROM:<a@example.test>');
    await c.command('RCPT TO:<held@example.test>');
    await c.command('DATA');
    const reply = await c.command('From: <alice@example.test>\r\nSubject: shown on the page\r\n\r\nhi\r\n.');
    c.destroy();
    const id = /queued as (\S+)/.exec(reply)![1]!;
    const admin = await rig.app.browserSession('admin');
    const en = await admin.get('/admin/mail-queue');
    const row = en.text.slice(en.text.indexOf(`data-message-id="${id}"`));
    expect(row).toContain('shown on the page');
    expect(row).toMatch(/via SMTP · \d+ bytes/);
    const ja = await admin.get('/admin/mail-queue', { headers: { 'accept-language': 'ja' } });
    expect(ja.text.slice(ja.text.indexOf(`data-message-id="${id}"`))).toMatch(/SMTP 経由 · \d+ バイト/);
  });
});
