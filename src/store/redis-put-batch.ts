import type { CounterChange } from './store.js';

/** One put, as the batch script takes it (see PUT_MANY_LUA): keys by name, the rest as its arguments. */
export interface BatchedPut {
  docKey: string;
  indexKey: string;
  id: string;
  collection: string;
  /** '' for an unconditional write. */
  expected: string;
  json: string;
  counters: CounterChange[];
  /** Schedule key and mode ('u' removes, else the due time). */
  moves: [string, string][];
}

/** PUT's reply for one put: [1, version] written, [0, version] conflict, [2, current, change index] refused. */
export type PutReply = [number, number, number];

/** At most this many puts in one script call, so one call never holds Redis for long. */
const MAX_BATCH = 256;

interface Waiting {
  put: BatchedPut;
  resolve: (reply: PutReply) => void;
  reject: (err: unknown) => void;
}

/**
 * Gathers the puts issued while the event loop turns, and while an earlier batch is on its way, into one script
 * call (group commit, as the embedded store does for its journals): what a put costs Redis beyond its own
 * document (the script call, counters, schedule and index updates) is then paid once per batch. Each put keeps
 * its own outcome; a failed call fails every put of its batch, none of which was written.
 */
export class RedisPutBatch {
  readonly #run: (keys: string[], args: string[]) => Promise<unknown>;
  #waiting: Waiting[] = [];
  #busy = false;

  constructor(run: (keys: string[], args: string[]) => Promise<unknown>) {
    this.#run = run;
  }

  put(put: BatchedPut): Promise<PutReply> {
    return new Promise<PutReply>((resolve, reject) => {
      this.#waiting.push({ put, resolve, reject });
      if (!this.#busy) {
        this.#busy = true;
        // The puts of every request handled in this turn of the event loop go out together.
        setImmediate(() => void this.#flush());
      }
    });
  }

  async #flush(): Promise<void> {
    while (this.#waiting.length > 0) {
      const batch = this.#waiting.splice(0, MAX_BATCH);
      try {
        const [keys, args] = encode(batch.map((w) => w.put));
        const flat = (await this.#run(keys, args)) as number[];
        batch.forEach((w, i) => w.resolve([flat[3 * i]!, flat[3 * i + 1]!, flat[3 * i + 2]!]));
      } catch (err) {
        for (const w of batch) w.reject(err);
      }
    }
    this.#busy = false;
  }
}

/** KEYS and ARGV of PUT_MANY_LUA; KEYS[1] and KEYS[2] (collections, counters) are filled in by the caller. */
function encode(puts: BatchedPut[]): [string[], string[]] {
  const keys: string[] = [];
  const positions = new Map<string, number>();
  const key = (name: string): string => {
    let position = positions.get(name);
    if (position === undefined) {
      keys.push(name);
      // Lua counts from 1 and the first two keys are the collections set and the counters hash.
      position = keys.length + 2;
      positions.set(name, position);
    }
    return String(position);
  };
  const args: string[] = [String(puts.length)];
  for (const p of puts) {
    args.push(key(p.docKey), key(p.indexKey), p.id, p.collection, p.expected, p.json, String(p.counters.length));
    for (const c of p.counters) args.push(c.counter, String(c.delta), c.max === undefined ? '' : String(c.max));
    args.push(String(p.moves.length));
    for (const [scheduleKey, mode] of p.moves) args.push(key(scheduleKey), mode);
  }
  return [keys, args];
}
