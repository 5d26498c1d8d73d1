import { describe, expect, it } from 'vitest';
import { MemoryLocks } from '../../store/memory-locks.js';
import { createPacer, isThrottled, PUSHBACK_MS } from './pacing.js';

describe('pacing', () => {
  it('reads a provider throttling answer, not a busy recipient, as "too many"', () => {
    const err = (responseCode: number, response: string) =>
      Object.assign(new Error(response), { responseCode, response });
    expect(isThrottled(err(432, '432 4.3.2 STOREDRV.ClientSubmit; sender thread limit exceeded'))).toBe(true);
    expect(isThrottled(err(421, '421 4.7.0 Try again later, closing connection'))).toBe(true);
    expect(isThrottled(err(452, '452 4.5.3 Too many recipients'))).toBe(false);
    expect(isThrottled(err(451, '451 4.7.0 Too many messages, slow down'))).toBe(true);
    expect(isThrottled(err(451, '451 4.3.0 mailbox busy, try again later'))).toBe(false);
    expect(isThrottled(err(550, '550 5.1.1 too many unknown users'))).toBe(false);
    expect(isThrottled(new Error('connect ECONNREFUSED'))).toBe(false);
  });

  it('slows only the throttled server, caps one server in flight (as many more wait for a slot), and spaces a rate-limited server by slots', async () => {
    let now = 1_000_000;
    const pacer = createPacer({ locks: new MemoryLocks(() => undefined), now: () => now, perServerInFlight: 2 });
    expect(await pacer.admit({ id: 'a' })).toBeNull();
    pacer.done('a', 'throttled');
    expect(await pacer.admit({ id: 'a' })).toBe(now + 30_000);
    expect(await pacer.admit({ id: 'b' })).toBeNull();
    expect(await pacer.admit({ id: 'b' })).toBeNull();
    // Over the cap: two more wait for b's next slots, the fifth is put back.
    const third = pacer.admit({ id: 'b' });
    const fourth = pacer.admit({ id: 'b' });
    expect(await pacer.admit({ id: 'b' })).toBe(now + PUSHBACK_MS);
    const admitted: string[] = [];
    void third.then((r) => admitted.push(`third ${r}`));
    void fourth.then((r) => admitted.push(`fourth ${r}`));
    await Promise.resolve();
    expect(admitted).toEqual([]);
    pacer.done('b', 'sent');
    await third;
    expect(admitted).toEqual(['third null']);
    pacer.done('b', 'sent');
    await fourth;
    expect(admitted).toEqual(['third null', 'fourth null']);
    // Still two in flight (the slots were handed over, not given back): the next one waits again.
    const fifth = pacer.admit({ id: 'b' });
    // Throttled while it waited: it takes the pause, not the slot.
    pacer.done('b', 'throttled');
    expect(await fifth).toBe(now + 30_000);
    expect(await pacer.admit({ id: 'b' })).toBe(now + 30_000);
    // 30 per minute: one slot every 2 s; the second message of the slot waits for the next free one.
    expect(await pacer.admit({ id: 'c', rateLimitPerMinute: 30 })).toBeNull();
    const later = await pacer.admit({ id: 'c', rateLimitPerMinute: 30 });
    expect(later).toBe((Math.floor(now / 2000) + 1) * 2000);
    now = later!;
    expect(await pacer.admit({ id: 'c', rateLimitPerMinute: 30 })).toBeNull();
  });
});
