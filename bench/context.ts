import type { BenchOptions } from './options.js';
import type { PrivateRedis } from './private-redis.js';
import type { Sink } from './sink-process.js';

/** What every part of `npm run bench` shares: its options, the sink, how to start mailgate, and Redis. */
export interface Bench {
  options: BenchOptions;
  sink: Sink;
  /** The node arguments that start one mailgate instance of this tree (bench/mailgate-entry.ts). */
  entry: string[];
  redis: PrivateRedis;
}
