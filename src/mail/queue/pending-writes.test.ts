import { describe, expect, it } from 'vitest';
import { createLogger } from '../../log.js';
import { StoreUnavailableError, VersionConflictError } from '../../store/store.js';
import { createPendingWrites, WriteAbandonedError } from './pending-writes.js';

const log = createLogger({ level: 'silent' });

/** A clock that moves only when the writer sleeps. */
function manualClock() {
  let t = 0;
  const slept: number[] = [];
  return {
    now: () => t,
    sleep: async (ms: number) => {
      slept.push(ms);
      t += ms;
      await Promise.resolve();
    },
    slept,
  };
}

describe('pending writes', () => {
  it('keeps a write through a store outage and lands it once the store answers, with doubling capped backoff', async () => {
    const clock = manualClock();
    const writes = createPendingWrites({ log, minDelayMs: 100, maxDelayMs: 400, ...clock });
    let calls = 0;
    let pendingSeen = 0;
    const result = await writes.persist('msg_1', async () => {
      calls++;
      pendingSeen = Math.max(pendingSeen, writes.pending);
      if (calls <= 4) throw new StoreUnavailableError('down');
      return 'written';
    });
    expect(result).toBe('written');
    expect(calls).toBe(5);
    expect(clock.slept).toEqual([100, 200, 400, 400]);
    expect(pendingSeen).toBe(1);
    expect(writes.pending).toBe(0);
  });

  it('passes any other error through at once', async () => {
    const writes = createPendingWrites({ log, ...manualClock() });
    let calls = 0;
    const conflict = new VersionConflictError('messages', 'msg_1', 1, 2);
    await expect(
      writes.persist('msg_1', () => {
        calls++;
        return Promise.reject(conflict);
      }),
    ).rejects.toBe(conflict);
    expect(calls).toBe(1);
  });

  it('at stop, gives a write up once the drain time has passed', async () => {
    const clock = manualClock();
    const writes = createPendingWrites({ log, minDelayMs: 100, maxDelayMs: 100, drainMs: 1000, ...clock });
    const write = writes.persist('msg_1', () => Promise.reject(new StoreUnavailableError('down')));
    await writes.stop();
    await expect(write).rejects.toBeInstanceOf(WriteAbandonedError);
    // Tried for the drain time after stop, not forever.
    expect(clock.now()).toBeLessThanOrEqual(1200);
  });
});
