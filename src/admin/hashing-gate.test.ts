import { describe, expect, it } from 'vitest';
import { HashingBusyError, HashingGate } from './hashing-gate.js';

/** Hashes stand in as promises the test settles, so what runs when is observed exactly. */
function pendingHash() {
  let finish!: () => void;
  const done = new Promise<void>((resolve) => (finish = resolve));
  let started = false;
  return {
    run: () => {
      started = true;
      return done;
    },
    get started() {
      return started;
    },
    finish,
  };
}

const tick = () => new Promise<void>((resolve) => setImmediate(resolve));

describe('HashingGate', () => {
  it('runs at most `total` hashes at once and at most `perAccount` for one account, first come first served', async () => {
    const gate = new HashingGate({ total: 2, perAccount: 1, maxWaiting: 10 });
    const a1 = pendingHash();
    const a2 = pendingHash();
    const b1 = pendingHash();
    const c1 = pendingHash();
    const runs = [gate.run('a', a1.run), gate.run('a', a2.run), gate.run('b', b1.run), gate.run('c', c1.run)];
    await tick();
    // a2 waits for a1 (same account); b1 takes the second slot; c1 waits for a slot.
    expect([a1.started, a2.started, b1.started, c1.started]).toEqual([true, false, true, false]);
    expect(gate.load).toEqual({ running: 2, waiting: 2 });
    a1.finish();
    await tick();
    // a1's slot goes to a2 (first in line and its account is free now), not to c1.
    expect([a2.started, c1.started]).toEqual([true, false]);
    b1.finish();
    await tick();
    expect(c1.started).toBe(true);
    a2.finish();
    c1.finish();
    await Promise.all(runs);
    expect(gate.load).toEqual({ running: 0, waiting: 0 });
  });

  it('refuses at once when too many are waiting, and frees the slot of a hash that fails', async () => {
    const gate = new HashingGate({ total: 1, perAccount: 1, maxWaiting: 1 });
    const first = pendingHash();
    const running = gate.run('a', first.run);
    const waiting = gate.run('b', () => Promise.reject(new Error('scrypt failed')));
    await expect(gate.run('c', () => Promise.resolve())).rejects.toBeInstanceOf(HashingBusyError);
    first.finish();
    await running;
    await expect(waiting).rejects.toThrow('scrypt failed');
    expect(gate.load).toEqual({ running: 0, waiting: 0 });
    await expect(gate.run('c', () => Promise.resolve('ok'))).resolves.toBe('ok');
  });
});
