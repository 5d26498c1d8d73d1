import { checkName } from './names.js';
import { guard } from './redis-errors.js';
import type { ClaimedDoc, ScheduledEntry } from './store.js';

/** The sorted-set commands schedules use (the ioredis client made by redis-store.ts). */
export interface ScheduleCommands {
  zadd(key: string, score: number, member: string): Promise<unknown>;
  zadd(key: string, nx: 'NX', score: number, member: string): Promise<unknown>;
  zrem(key: string, member: string): Promise<unknown>;
  zcard(key: string): Promise<number>;
  zrange(key: string, start: string, stop: string, withScores: 'WITHSCORES'): Promise<string[]>;
  zrevrange(key: string, start: string, stop: string, withScores: 'WITHSCORES'): Promise<string[]>;
}

type RunScript = (keys: string[], args: (string | number)[]) => Promise<unknown>;

export interface RedisSchedulesOptions {
  prefix: string;
  commands: ScheduleCommands;
  /** CLAIM_DUE_LUA: leases up to `limit` due ids. */
  claimDue: RunScript;
  /** CLAIM_DUE_DOCS_LUA: the same, answering each id with its document (version and JSON). */
  claimDueDocs: RunScript;
}

/** Schedules as Redis sorted sets `<prefix>sched:<queue>`, scored by due time; claims are one script call. */
export class RedisSchedules {
  readonly #o: RedisSchedulesOptions;

  constructor(options: RedisSchedulesOptions) {
    this.#o = options;
  }

  /** The sorted set of a queue (the put and delete scripts move ids in it too). */
  keyOf(queue: string): string {
    return `${this.#o.prefix}sched:${queue}`;
  }

  async schedule(queue: string, id: string, dueAt: number, options?: { onlyIfAbsent?: boolean }): Promise<void> {
    checkName('queue name', queue);
    checkName('scheduled id', id);
    if (!Number.isFinite(dueAt))
      throw new Error(`schedule ${queue}/${id}: due time must be a finite number of ms, got ${dueAt}`);
    const key = this.keyOf(queue);
    await guard(() =>
      options?.onlyIfAbsent ? this.#o.commands.zadd(key, 'NX', dueAt, id) : this.#o.commands.zadd(key, dueAt, id),
    );
  }

  async unschedule(queue: string, id: string): Promise<void> {
    await guard(() => this.#o.commands.zrem(this.keyOf(queue), id));
  }

  async claimDue(queue: string, now: number, leaseMs: number, limit: number): Promise<string[]> {
    if (limit <= 0) return [];
    return (await guard(() => this.#o.claimDue([this.keyOf(queue)], [now, now + leaseMs, limit]))) as string[];
  }

  /** `docKeyPrefix`: the key of a document of the collection without its id. */
  async claimDueDocs<T>(
    queue: string,
    docKeyPrefix: string,
    now: number,
    leaseMs: number,
    limit: number,
  ): Promise<ClaimedDoc<T>[]> {
    if (limit <= 0) return [];
    const flat = (await guard(() =>
      this.#o.claimDueDocs([this.keyOf(queue)], [now, now + leaseMs, limit, docKeyPrefix]),
    )) as (string | null)[];
    const out: ClaimedDoc<T>[] = [];
    for (let i = 0; i + 2 < flat.length; i += 3) {
      const [id, v, d] = [flat[i]!, flat[i + 1], flat[i + 2]];
      out.push({ id, doc: v == null || d == null ? null : { id, version: Number(v), value: JSON.parse(d) as T } });
    }
    return out;
  }

  async scheduled(queue: string, options: { limit: number; newestFirst?: boolean }): Promise<ScheduledEntry[]> {
    checkName('queue name', queue);
    const limit = Math.floor(options.limit);
    if (!(limit > 0)) return [];
    const key = this.keyOf(queue);
    const stop = String(limit - 1);
    const { commands } = this.#o;
    const flat = await guard(() =>
      options.newestFirst
        ? commands.zrevrange(key, '0', stop, 'WITHSCORES')
        : commands.zrange(key, '0', stop, 'WITHSCORES'),
    );
    const out: ScheduledEntry[] = [];
    for (let i = 0; i + 1 < flat.length; i += 2) out.push({ id: flat[i]!, dueAt: Number(flat[i + 1]) });
    return out;
  }

  async scheduleStats(queue: string): Promise<{ count: number; earliestDueAt: number | null }> {
    const key = this.keyOf(queue);
    const { commands } = this.#o;
    const [count, first] = await guard(() =>
      Promise.all([commands.zcard(key), commands.zrange(key, '0', '0', 'WITHSCORES')]),
    );
    return { count, earliestDueAt: first[1] === undefined ? null : Number(first[1]) };
  }
}
