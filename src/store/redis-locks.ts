import { randomBytes } from 'node:crypto';
import { checkName } from './names.js';
import { guard } from './redis-errors.js';
import type { Lock } from './store.js';

type RunScript = (keys: string[], args: (string | number)[]) => Promise<unknown>;

export interface RedisLockOptions {
  prefix: string;
  /** SET key owner PX ms NX on the store's connection. */
  setIfAbsent(key: string, owner: string, ttlMs: number): Promise<string | null>;
  /** RELEASE_LOCK_LUA and EXTEND_LOCK_LUA: compare the owner, then delete or extend. */
  release: RunScript;
  extend: RunScript;
}

/** A lock is a key `<prefix>lock:<name>` holding a random owner; only that owner releases or extends it. */
export async function acquireRedisLock(o: RedisLockOptions, name: string, ttlMs: number): Promise<Lock | null> {
  checkName('lock name', name);
  if (!(ttlMs > 0) || !Number.isFinite(ttlMs))
    throw new Error(`lock ${name}: ttlMs must be a positive number, got ${ttlMs}`);
  const key = `${o.prefix}lock:${name}`;
  const owner = randomBytes(16).toString('hex');
  const ok = await guard(() => o.setIfAbsent(key, owner, Math.max(1, Math.round(ttlMs))));
  if (ok !== 'OK') return null;
  return {
    name,
    owner,
    release: async () => (await guard(() => o.release([key], [owner]))) === 1,
    extend: async (ms: number) => (await guard(() => o.extend([key], [owner, Math.max(1, Math.round(ms))]))) === 1,
  };
}
