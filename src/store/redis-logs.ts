import { logIdOfStreamId, streamIdOfLogId } from './log-ids.js';
import { checkName } from './names.js';
import { guard } from './redis-errors.js';
import type { LogEntry } from './store.js';

/** The stream commands logs use (the ioredis client made by redis-store.ts). */
export interface LogCommands {
  xadd(key: string, id: '*', field: string, value: string): Promise<string | null>;
  xrevrange(key: string, end: string, start: string, count: 'COUNT', n: number): Promise<[string, string[]][]>;
}

/** Append-only logs as Redis streams `<prefix>log:<name>`, one field `e` holding the JSON entry. */
export class RedisLogs {
  constructor(
    private readonly prefix: string,
    private readonly commands: LogCommands,
  ) {}

  async append<T>(log: string, entry: T): Promise<string> {
    checkName('log name', log);
    const json = JSON.stringify(entry);
    if (json === undefined) throw new Error(`cannot append ${typeof entry} to log ${log}: not JSON`);
    const raw = await guard(() => this.commands.xadd(`${this.prefix}log:${log}`, '*', 'e', json));
    return logIdOfStreamId(raw!);
  }

  async readLog<T>(log: string, options: { before?: string; after?: string; limit: number }): Promise<LogEntry<T>[]> {
    checkName('log name', log);
    if (options.limit <= 0) return [];
    const end = options.before === undefined ? '+' : `(${streamIdOfLogId(options.before)}`;
    const start = options.after === undefined ? '-' : `(${streamIdOfLogId(options.after)}`;
    const rows = await guard(() =>
      this.commands.xrevrange(`${this.prefix}log:${log}`, end, start, 'COUNT', options.limit),
    );
    return rows.map(([id, fields]) => ({ id: logIdOfStreamId(id), entry: JSON.parse(fields[1] ?? 'null') as T }));
  }
}
