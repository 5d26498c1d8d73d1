import os from 'node:os';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RawSmtp, startSubmissionRig, type SubmissionRig } from '../fakes/submission-rig.js';

/**
 * Bad input on the submission front: each gets its SMTP answer (code and enhanced code), nothing is stored, and
 * the listener keeps serving the next client. The listener binds every address here, so a client can also come
 * from a non-loopback address of this machine (AUTH before TLS is refused there).
 */

const MAX_BYTES = 200_000;
let rig: SubmissionRig;
let key: string;

const externalAddress = Object.values(os.networkInterfaces())
  .flat()
  .find((a) => a && a.family === 'IPv4' && !a.internal)?.address;

const GOOD = 'From: App <alice@example.test>\r\nTo: bob@example.test\r\nSubject: ok\r\n\r\nbody\r\n';

/** A logged-in raw client with MAIL FROM and one RCPT TO done, ready for DATA. */
async function ready(): Promise<RawSmtp> {
  const c = await RawSmtp.connect(rig.port);
  expect(await c.login(key)).toMatch(/^235/);
  expect(await c.command('MAIL FROM:<app@example.test>')).toMatch(/^250/);
  expect(await c.command('RCPT TO:<bob@example.test>')).toMatch(/^250/);
  return c;
}

/** Sends DATA with this content (dot-stuffing left to the caller) and returns the final reply. */
async function submit(content: string | Buffer): Promise<string> {
  const c = await ready();
  expect(await c.command('DATA')).toMatch(/^354/);
  await c.write(content);
  const reply = await c.command('\r\n.');
  c.destroy();
  return reply;
}

/** A good message still goes through: the listener kept serving. */
async function stillServing(): Promise<void> {
  expect(await submit(GOOD)).toMatch(/^250 2\.0\.0/);
}

beforeAll(async () => {
  rig = await startSubmissionRig({
    env: { MAILGATE_MAX_MESSAGE_BYTES: String(MAX_BYTES), MAILGATE_SUBMISSION_HOST: '0.0.0.0' },
  });
  key = await rig.key();
});
afterAll(async () => {
  await rig?.close();
});

describe('refusals of the submission front', () => {
  it.each([
    [
      'malformed MIME (a header line without a colon)',
      'From: a <alice@example.test>\r\nthis is not a header\r\n\r\nx\r\n',
    ],
    ['no From header', 'To: bob@example.test\r\nSubject: x\r\n\r\nx\r\n'],
    ['a header line over 998 octets', `From: <alice@example.test>\r\nSubject: ${'x'.repeat(1000)}\r\n\r\nbody\r\n`],
    ['a NUL', 'From: <alice@example.test>\r\nSubject: nul\r\n\r\nbefore\0after\r\n'],
    ['a bare LF storm', `From: <alice@example.test>\r\nSubject: lf\r\n\r\n${'\n'.repeat(100_000)}`],
  ])('%s: 554 5.6.0, nothing stored', async (_what, content) => {
    const stored = await rig.storedCount();
    expect(await submit(content)).toMatch(/^554 5\.6\.0 /);
    expect(await rig.storedCount()).toBe(stored);
    await stillServing();
  });

  it('a message over SIZE: 552 5.3.4 whether declared in MAIL FROM or only sent', async () => {
    const stored = await rig.storedCount();
    const c = await RawSmtp.connect(rig.port);
    await c.login(key);
    expect(await c.command(`MAIL FROM:<a@example.test> SIZE=${MAX_BYTES + 1}`)).toMatch(/^552/);
    c.destroy();
    const big = `From: <alice@example.test>\r\nSubject: big\r\n\r\n${'y'.repeat(900)}\r\n`.repeat(250);
    expect(await submit(big)).toMatch(/^552 5\.3\.4 /);
    expect(await rig.storedCount()).toBe(stored);
    await stillServing();
  });

  it('10,000 RCPT TO, pipelined: 1,000 accepted, the rest 452 4.5.3; nothing stored', async () => {
    const stored = await rig.storedCount();
    const c = await RawSmtp.connect(rig.port);
    await c.login(key);
    expect(await c.command('MAIL FROM:<a@example.test>')).toMatch(/^250/);
    const lines = Array.from({ length: 10_000 }, (_, i) => `RCPT TO:<r${i}@example.test>\r\n`).join('');
    await c.write(lines);
    const codes = new Map<string, number>();
    for (let i = 0; i < 10_000; i++) {
      const reply = await c.reply();
      const code = reply.slice(0, 9);
      codes.set(code, (codes.get(code) ?? 0) + 1);
    }
    expect(Object.fromEntries(codes)).toEqual({ '250 Accep': 1000, '452 4.5.3': 9000 });
    expect(await c.command('QUIT')).toMatch(/^221/);
    expect(await rig.storedCount()).toBe(stored);
    await stillServing();
  });

  it.skipIf(!externalAddress)('AUTH before STARTTLS from a non-loopback address: 538 5.7.11', async () => {
    const c = await RawSmtp.connect(rig.port, { host: externalAddress! });
    expect(await c.login(key)).toMatch(/^538 5\.7\.11 /);
    c.destroy();
  });

  it("a wrong key 100 times slows the address down, not the key's owner", async () => {
    const answers: string[] = [];
    // The guessing comes from 127.0.0.3, so the other tests (from 127.0.0.1) are not slowed down by it.
    const attacker = { localAddress: '127.0.0.3' };
    let c = await RawSmtp.connect(rig.port, attacker);
    await c.command('EHLO x');
    for (let i = 0; i < 100; i++) {
      // smtp-server closes a connection after 10 unauthenticated commands: a new one every few attempts.
      if (i % 5 === 4) {
        c.destroy();
        c = await RawSmtp.connect(rig.port, attacker);
        await c.command('EHLO x');
      }
      answers.push(
        (await c.command(`AUTH PLAIN ${Buffer.from(`\0x\0mgk_${'A'.repeat(43)}`).toString('base64')}`)).slice(0, 9),
      );
    }
    c.destroy();
    expect(answers.slice(0, 10)).toEqual(Array(10).fill('535 5.7.8'));
    // After that each attempt waits for its turn (2, 4, 8, 16 … s after the previous one): within the few seconds
    // of this loop a handful get a turn at most, every other attempt is refused without checking the key.
    const later = answers.slice(10);
    expect(later.filter((a) => a === '535 5.7.8').length).toBeLessThanOrEqual(4);
    expect(later.filter((a) => a === '454 4.7.0').length).toBe(
      later.length - later.filter((a) => a === '535 5.7.8').length,
    );
    const slowed = await RawSmtp.connect(rig.port, attacker);
    expect(await slowed.login(key)).toMatch(/^(454 4\.7\.0|235)/);
    slowed.destroy();
    // The owner, from another address, is not locked out.
    const owner = await RawSmtp.connect(rig.port, { localAddress: '127.0.0.2' });
    expect(await owner.login(key)).toMatch(/^235/);
    owner.destroy();
  });

  it('a client that stops mid-DATA: nothing stored, others still served', async () => {
    const stored = await rig.storedCount();
    const c = await ready();
    expect(await c.command('DATA')).toMatch(/^354/);
    await c.write(`From: <alice@example.test>\r\nSubject: cut\r\n\r\n${'z'.repeat(500)}\r\n`);
    c.destroy();
    // A whole conversation served after the cut one ended: the cut message had its chance to be stored.
    await stillServing();
    expect(await rig.storedCount()).toBe(stored + 1);
  });

  it('allowedFrom checks the header From: 550 5.7.1', async () => {
    const limited = await rig.key({ allowedFrom: ['*@example.test'] });
    const c = await RawSmtp.connect(rig.port);
    await c.login(limited);
    await c.command('MAIL FROM:<a@example.test>');
    await c.command('RCPT TO:<bob@example.test>');
    await c.command('DATA');
    expect(await c.command('From: <eve@elsewhere.example>\r\nSubject: x\r\n\r\nx\r\n.')).toMatch(/^550 5\.7\.1 /);
    c.destroy();
  });

  it('rateLimitPerMinute: 451 4.7.1 at MAIL FROM', async () => {
    const limited = await rig.key({ rateLimitPerMinute: 1 });
    const c = await RawSmtp.connect(rig.port);
    await c.login(limited);
    expect(await c.command('MAIL FROM:<a@example.test>')).toMatch(/^250/);
    expect(await c.command('RSET')).toMatch(/^250/);
    expect(await c.command('MAIL FROM:<a@example.test>')).toMatch(/^451 4\.7\.1 /);
    c.destroy();
  });

  it('a key revoked while its connection is open is refused at the next MAIL FROM: 535 5.7.8', async () => {
    const doomed = await rig.key();
    const c = await RawSmtp.connect(rig.port);
    expect(await c.login(doomed)).toMatch(/^235/);
    const view = (await rig.app.services.apiKeys.authenticate(doomed))!;
    await rig.app.services.apiKeys.revoke(view.id, { type: 'system', id: 'test' });
    expect(await c.command('MAIL FROM:<a@example.test>')).toMatch(/^535 5\.7\.8 /);
    c.destroy();
  });
});
