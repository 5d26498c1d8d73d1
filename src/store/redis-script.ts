import { createHash } from 'node:crypto';

/** The two commands a script needs (the ioredis client made by redis-store.ts). */
export interface ScriptClient {
  evalsha(sha: string, numKeys: number, ...keysAndArgs: (string | number | Buffer)[]): Promise<unknown>;
  eval(script: string, numKeys: number, ...keysAndArgs: (string | number | Buffer)[]): Promise<unknown>;
}

/** A Lua script run by SHA, loaded on first use (EVALSHA, then EVAL on NOSCRIPT). */
export class Script {
  readonly #sha: string;
  constructor(readonly source: string) {
    this.#sha = createHash('sha1').update(source).digest('hex');
  }

  async run(client: ScriptClient, keys: string[], args: (string | number | Buffer)[]): Promise<unknown> {
    try {
      return await client.evalsha(this.#sha, keys.length, ...keys, ...args);
    } catch (err) {
      if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw err;
      return client.eval(this.source, keys.length, ...keys, ...args);
    }
  }
}
