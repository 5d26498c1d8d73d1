import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../fakes/app.js';
import { redisUrlForTests } from '../fakes/redis.js';
import { RawSmtp, startSubmissionRig, type SubmissionRig } from '../fakes/submission-rig.js';

/**
 * Two instances on one Redis, each with its own submission listener: the same generated certificate on both
 * (sealed in the store), a key revoked through one refused by the other from its next command on, and mail
 * submitted to either delivered once.
 */

let rig: SubmissionRig;
let second: TestApp;
let secondPort: number;

/** STARTTLS on a raw connection; the certificate's SHA-256 fingerprint. */
async function fingerprintAt(port: number): Promise<string> {
  const c = await RawSmtp.connect(port);
  await c.command('EHLO x');
  expect(await c.command('STARTTLS')).toMatch(/^220/);
  const socket = c.socket();
  const secure = tls.connect({ socket, rejectUnauthorized: false });
  await new Promise<void>((resolve, reject) => {
    secure.once('secureConnect', resolve);
    secure.once('error', reject);
  });
  const fp = secure.getPeerX509Certificate()!.fingerprint256;
  secure.destroy();
  return fp;
}

describe.skipIf(!redisUrlForTests())('the submission front on two instances sharing Redis', () => {
  beforeAll(async () => {
    rig = await startSubmissionRig({ store: 'redis' });
    second = await startTestApp({ shareWith: rig.app, workers: true, env: { MAILGATE_SUBMISSION_PORT: '0' } });
    secondPort = (await second.services.submission.start())!;
  });
  afterAll(async () => {
    await second?.close();
    await rig?.close();
  });

  it('both present the same generated certificate', async () => {
    expect(await fingerprintAt(secondPort)).toBe(await fingerprintAt(rig.port));
  });

  it('a key revoked through one instance is refused by the other at the next command', async () => {
    const key = await rig.key();
    const admin = await rig.app.apiKey(['admin']);
    const c = await RawSmtp.connect(secondPort);
    expect(await c.login(key)).toMatch(/^235/);
    expect(await c.command('MAIL FROM:<a@example.test>')).toMatch(/^250/);
    expect(await c.command('RSET')).toMatch(/^250/);

    const view = (await rig.app.services.apiKeys.authenticate(key))!;
    const res = await fetch(`${rig.app.url}/api/v1/api-keys/${view.id}`, {
      method: 'DELETE',
      headers: { authorization: `Bearer ${admin}` },
    });
    expect(res.status).toBeLessThan(300);

    expect(await c.command('MAIL FROM:<a@example.test>')).toMatch(/^535 5\.7\.8 /);
    c.destroy();
    const again = await RawSmtp.connect(secondPort);
    expect(await again.login(key)).toMatch(/^535 5\.7\.8 /);
    again.destroy();
  });

  it('mail submitted to the second instance is delivered once', async () => {
    const key = await rig.key();
    const before = rig.sink.messages.length;
    const c = await RawSmtp.connect(secondPort);
    await c.login(key);
    await c.command('MAIL FROM:<a@example.test>');
    await c.command('RCPT TO:<bob@example.test>');
    await c.command('DATA');
    expect(await c.command('From: <alice@example.test>\r\nSubject: via two\r\n\r\nhi\r\n.')).toMatch(/^250 /);
    c.destroy();
    await rig.sink.waitFor(before + 1);
    // Stopping waits for every send in flight to finish and be recorded: a duplicate would be at the sink now.
    await Promise.all([rig.app.services.mail.queue.stop(), second.services.mail.queue.stop()]);
    expect(rig.sink.messages.length).toBe(before + 1);
  });
});
