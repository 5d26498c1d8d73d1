import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RawSmtp, startSubmissionRig, type SubmissionRig } from '../fakes/submission-rig.js';

/**
 * A graceful stop: the message being received when the stop begins is still stored and answered 250, the next
 * command gets 421, idle connections are told 421, and no new connection is accepted.
 */

let rig: SubmissionRig;
let key: string;

beforeAll(async () => {
  rig = await startSubmissionRig({});
  key = await rig.key();
});
afterAll(async () => {
  await rig?.close();
});

/** Whether a new connection to the submission port is refused. */
function connectionRefused(): Promise<boolean> {
  return new Promise<boolean>((resolve) => {
    const s = net.connect(rig.port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(false);
    });
    s.once('error', () => resolve(true));
  });
}

describe('stopping the submission front', () => {
  it('finishes the message in flight, then answers 421', async () => {
    const idle = await RawSmtp.connect(rig.port);
    await idle.login(key);
    const c = await RawSmtp.connect(rig.port);
    await c.login(key);
    await c.command('MAIL FROM:<a@example.test>');
    await c.command('RCPT TO:<bob@example.test>');
    expect(await c.command('DATA')).toMatch(/^354/);
    await c.write('From: <alice@example.test>\r\nSubject: in flight\r\n\r\npart one\r\n');
    const stored = await rig.storedCount();

    const stopped = rig.app.services.submission.stop();
    // The listener closes as the stop begins; the message in flight keeps the stop from finishing meanwhile.
    await expect.poll(connectionRefused, { timeout: 10_000, message: 'a new connection during the stop' }).toBe(true);

    expect(await c.command('part two\r\n.')).toMatch(/^250 2\.0\.0 /);
    expect(await c.command('MAIL FROM:<a@example.test>')).toMatch(/^421/);
    await stopped;
    expect(await idle.reply()).toMatch(/^421/);
    expect(await rig.storedCount()).toBe(stored + 1);
    c.destroy();
    idle.destroy();
  });
});
