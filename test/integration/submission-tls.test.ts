import { X509Certificate } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import nodemailer from 'nodemailer';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testCertificate } from '../fakes/smtp-server.js';
import { startSubmissionRig, type SubmissionRig } from '../fakes/submission-rig.js';

/**
 * MAILGATE_SUBMISSION_IMPLICIT_TLS with the operator's certificate (MAILGATE_SUBMISSION_TLS_CERT_FILE/_KEY_FILE):
 * TLS from the first byte, that certificate presented (verified by the client against it as its CA), and mail
 * delivered as with STARTTLS; the replies to pipelined commands come back in one TLS record.
 */

let rig: SubmissionRig;
let dir: string;
let cert: string;

beforeAll(async () => {
  const pair = await testCertificate();
  cert = pair.cert;
  dir = await mkdtemp(path.join(os.tmpdir(), 'mailgate-submission-tls-'));
  await writeFile(path.join(dir, 'cert.pem'), pair.cert);
  await writeFile(path.join(dir, 'key.pem'), pair.key);
  rig = await startSubmissionRig({
    env: {
      MAILGATE_SUBMISSION_IMPLICIT_TLS: 'true',
      MAILGATE_SUBMISSION_TLS_CERT_FILE: path.join(dir, 'cert.pem'),
      MAILGATE_SUBMISSION_TLS_KEY_FILE: path.join(dir, 'key.pem'),
    },
  });
});
afterAll(async () => {
  await rig?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('implicit TLS with a configured certificate', () => {
  it('presents the configured certificate from the first byte', async () => {
    const socket = tls.connect({ host: '127.0.0.1', port: rig.port, ca: [cert] });
    await new Promise<void>((resolve, reject) => {
      socket.once('secureConnect', resolve);
      socket.once('error', reject);
    });
    expect(socket.authorized).toBe(true);
    expect(socket.getPeerX509Certificate()!.fingerprint256).toBe(new X509Certificate(cert).fingerprint256);
    const greeting = await new Promise<string>((resolve) => socket.once('data', (d: Buffer) => resolve(d.toString())));
    expect(greeting).toMatch(/^220 /);
    socket.destroy();
  });

  it('an app on port-465 settings sends through it', async () => {
    const key = await rig.key();
    const before = rig.sink.messages.length;
    const client = nodemailer.createTransport({
      host: '127.0.0.1',
      port: rig.port,
      secure: true,
      tls: { ca: [cert] },
      auth: { user: 'scanner', pass: key },
    });
    const info = await client.sendMail({
      from: 'alice@example.test',
      to: 'bob@example.test',
      subject: 'scan',
      text: 'x',
    });
    client.close();
    expect(String(info.response)).toMatch(/^250 2\.0\.0 /);
    await rig.sink.waitFor(before + 1);
  });

  it('answers MAIL, RCPT and DATA pipelined in one write with one TLS record', async () => {
    const key = await rig.key();
    const socket = tls.connect({ host: '127.0.0.1', port: rig.port, ca: [cert] });
    const chunks: string[] = [];
    let wake = () => undefined as void;
    socket.on('data', (d: Buffer) => {
      chunks.push(d.toString('latin1'));
      wake();
    });
    const until = async (done: () => boolean) => {
      while (!done()) await new Promise<void>((resolve) => (wake = resolve));
    };
    /** Writes `data` at once and waits for the last reply it asks for (`count` replies in all). */
    const send = async (data: string, count = 1) => {
      chunks.length = 0;
      socket.write(data);
      await until(() => (chunks.join('').match(/^\d{3} [^\r\n]*\r\n/gm) ?? []).length >= count);
      return chunks.join('');
    };
    await until(() => chunks.join('').includes('\r\n'));
    expect(await send('EHLO test.example\r\n')).toMatch(/^250-/);
    expect(await send(`AUTH PLAIN ${Buffer.from(`\0app\0${key}`).toString('base64')}\r\n`)).toMatch(/^235 /);
    const replies = await send('MAIL FROM:<alice@example.test>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\n', 3);
    expect(replies).toMatch(/^250 [^\r\n]*\r\n250 [^\r\n]*\r\n354 [^\r\n]*\r\n$/);
    // One 'data' event per TLS record: written one by one, the three replies would come as three.
    expect(chunks).toHaveLength(1);
    expect(await send('From: alice@example.test\r\nSubject: pipelined\r\n\r\nx\r\n.\r\n')).toMatch(/^250 /);
    socket.destroy();
  });
});
