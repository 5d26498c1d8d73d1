import { parseArgs } from 'node:util';

/** The command line of `npm run bench` (bench/run.ts), as numbers where they are counts. */
export interface BenchOptions {
  /** Messages per phase. */
  n: number;
  /** Pooled SMTP connections of the raw pool, of mailgate's transport and of the SMTP client. */
  connections: number;
  /** Concurrent HTTP clients of the API load generator. */
  clients: number;
  queueConcurrency: number;
  rounds: number;
  warmupRounds: number;
  /** The largest crafted HTML-only body of the event-loop stall phase. */
  htmlChars: number;
  only: string | undefined;
  /** Another build's dist/bench/bench/mailgate-process.js to run side by side with this one. */
  against: string | undefined;
}

/** `args` defaults to this process's own arguments, as node:util's parseArgs reads them. */
export function parseBenchOptions(args?: string[]): BenchOptions {
  const { values } = parseArgs({
    args,
    options: {
      n: { type: 'string', default: '2000' },
      connections: { type: 'string', default: '5' },
      clients: { type: 'string', default: '32' },
      concurrency: { type: 'string', default: '32' },
      rounds: { type: 'string', default: '3' },
      warmup: { type: 'string', default: '1' },
      'html-chars': { type: 'string', default: '1000000' },
      only: { type: 'string' },
      against: { type: 'string' },
    },
  });
  return {
    n: Number(values.n),
    connections: Number(values.connections),
    clients: Number(values.clients),
    queueConcurrency: Number(values.concurrency),
    rounds: Number(values.rounds),
    warmupRounds: Number(values.warmup),
    htmlChars: Number(values['html-chars']),
    only: values.only,
    against: values.against,
  };
}
