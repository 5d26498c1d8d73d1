import { EventEmitter } from 'node:events';
import type { PubSub } from './store.js';

/** Pub/sub of the embedded store: its one process is every subscriber there is. */
export class MemoryPubSub implements PubSub {
  readonly #events = new EventEmitter();
  readonly #assertOpen: () => void;
  readonly #log: { warn(obj: object, msg: string): void } | undefined;

  constructor(assertOpen: () => void, log?: { warn(obj: object, msg: string): void }) {
    this.#assertOpen = assertOpen;
    this.#log = log;
    this.#events.setMaxListeners(0);
  }

  async publish(channel: string, message: string): Promise<void> {
    this.#assertOpen();
    // Delivered asynchronously, as over Redis, so publishers never run subscribers' code inline.
    setImmediate(() => {
      for (const listener of this.#events.listeners(channel) as ((message: string) => void)[]) {
        try {
          listener(message);
        } catch (err) {
          this.#log?.warn({ err, channel }, 'a pub/sub handler threw');
        }
      }
    });
  }

  async subscribe(channel: string, handler: (message: string) => void): Promise<() => Promise<void>> {
    this.#assertOpen();
    this.#events.on(channel, handler);
    return async () => {
      this.#events.off(channel, handler);
    };
  }

  close(): void {
    this.#events.removeAllListeners();
  }
}
