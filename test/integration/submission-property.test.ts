import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { headerBlock, RawSmtp, startSubmissionRig, type SubmissionRig } from '../fakes/submission-rig.js';

/**
 * For any accepted submission, the recipients the message is delivered to are exactly the RCPT TO list (not the
 * headers), and no Bcc header leaves mailgate, whatever the headers say and however Bcc is spelled or folded.
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

const local = fc.stringMatching(/^[a-z0-9]{1,8}$/);
const address = fc
  .tuple(local, fc.constantFrom('example.test', 'example.net', 'Example.ORG'))
  .map(([l, d]) => `${l}@${d}`);
const bccName = fc.constantFrom('Bcc', 'BCC', 'bcc', 'bCc');
const submission = fc.record({
  rcpt: fc.uniqueArray(address, {
    minLength: 1,
    maxLength: 12,
    comparator: (a, b) => a.toLowerCase() === b.toLowerCase(),
  }),
  to: fc.array(address, { maxLength: 4 }),
  cc: fc.array(address, { maxLength: 4 }),
  bcc: fc.array(address, { maxLength: 4 }),
  bccName,
  foldBcc: fc.boolean(),
  from: fc.constantFrom('alice@example.test', 'someone@else.example', '"Quoted, Name" <x@y.example>'),
});

describe('submission property', () => {
  it('delivered recipients equal RCPT TO; no Bcc header leaves mailgate', { timeout: 120_000 }, async () => {
    await fc.assert(
      fc.asyncProperty(submission, async (s) => {
        const lines = [`From: ${s.from}`, `Subject: property`];
        if (s.to.length) lines.push(`To: ${s.to.join(', ')}`);
        if (s.cc.length) lines.push(`Cc: ${s.cc.join(', ')}`);
        if (s.bcc.length) lines.push(`${s.bccName}: ${s.bcc.join(s.foldBcc ? ',\r\n\t' : ', ')}`);
        const before = rig.sink.messages.length;
        const c = await RawSmtp.connect(rig.port);
        await c.login(key);
        await c.command('MAIL FROM:<app@example.test>');
        for (const r of s.rcpt) expect(await c.command(`RCPT TO:<${r}>`)).toMatch(/^250/);
        await c.command('DATA');
        const reply = await c.command(`${lines.join('\r\n')}\r\n\r\nbody\r\n.`);
        c.destroy();
        expect(reply).toMatch(/^250 /);
        await rig.sink.waitFor(before + 1);
        const got = rig.sink.messages[before]!;
        expect(new Set(got.to.map((a) => a.toLowerCase()))).toEqual(new Set(s.rcpt.map((a) => a.toLowerCase())));
        expect(got.to).toHaveLength(s.rcpt.length);
        expect(headerBlock(got.raw)).not.toMatch(/^bcc\s*:/im);
      }),
      { numRuns: 30 },
    );
  });
});
