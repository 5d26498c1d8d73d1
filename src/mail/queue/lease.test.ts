import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createLogger } from '../../log.js';
import { StoreUnavailableError, type Store } from '../../store/store.js';
import { createLeaseKeeper } from './lease.js';

/** The one store call the keeper makes, recorded; `down` makes it fail like an unreachable store. */
function scheduleRecorder() {
  const calls: { id: string; dueAt: number }[] = [];
  const state = { down: false };
  const store = {
    schedule: (_queue: string, id: string, dueAt: number) => {
      if (state.down) return Promise.reject(new StoreUnavailableError('down'));
      calls.push({ id, dueAt });
      return Promise.resolve();
    },
  } as unknown as Store;
  return { store, calls, state };
}

describe('lease keeper', () => {
  beforeEach(() => {
    vi.useFakeTimers({ now: 1_000_000 });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('extends held leases to now + lease at every heartbeat, and stops for an ended one', async () => {
    const { store, calls } = scheduleRecorder();
    const lease = createLeaseKeeper({
      store,
      queue: 'mail',
      log: createLogger({ level: 'silent' }),
      leaseMs: 20_000,
      heartbeatMs: 5_000,
    });
    lease.start();
    lease.hold('a');
    lease.hold('b');
    await vi.advanceTimersByTimeAsync(5_000);
    expect(calls).toEqual([
      { id: 'a', dueAt: 1_025_000 },
      { id: 'b', dueAt: 1_025_000 },
    ]);
    await lease.end('a');
    await vi.advanceTimersByTimeAsync(5_000);
    expect(calls.slice(2)).toEqual([{ id: 'b', dueAt: 1_030_000 }]);
    await lease.stop();
  });

  it('keeps beating through a store outage and extends again once the store is back', async () => {
    const { store, calls, state } = scheduleRecorder();
    const lease = createLeaseKeeper({
      store,
      queue: 'mail',
      log: createLogger({ level: 'silent' }),
      leaseMs: 20_000,
      heartbeatMs: 5_000,
    });
    lease.start();
    lease.hold('a');
    state.down = true;
    await vi.advanceTimersByTimeAsync(10_000);
    expect(calls).toEqual([]);
    state.down = false;
    await vi.advanceTimersByTimeAsync(5_000);
    expect(calls).toEqual([{ id: 'a', dueAt: 1_035_000 }]);
    await lease.stop();
  });
});
