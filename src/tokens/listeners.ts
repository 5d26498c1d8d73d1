import type { Logger } from '../log.js';
import type { TokenListener } from './token-service-types.js';

/** The token service's listeners, called one after another; a failing listener is logged and never fails a refresh. */
export class TokenListeners {
  readonly #list: TokenListener[] = [];

  constructor(private readonly log: Logger) {}

  add(listener: TokenListener): void {
    this.#list.push(listener);
  }

  async emit<K extends keyof TokenListener>(
    event: K,
    arg: Parameters<NonNullable<TokenListener[K]>>[0],
  ): Promise<void> {
    for (const l of this.#list) {
      const fn = l[event] as ((a: typeof arg) => Promise<void> | void) | undefined;
      await Promise.resolve()
        .then(() => fn?.call(l, arg))
        .catch((err: unknown) => this.log.error({ err }, `${event} listener failed`));
    }
  }
}
