import { guard, quitOrDisconnect, withTimeout } from './redis-errors.js';
import type { PubSub } from './store.js';

/** The calls pub/sub makes on its own connection (an ioredis client in subscribe mode, made by redis-store.ts). */
export interface SubscriberConnection {
  readonly status: string;
  connect(): Promise<void>;
  disconnect(): void;
  quit(): Promise<unknown>;
  once(event: 'ready', listener: () => void): unknown;
  subscribe(channel: string): Promise<unknown>;
  unsubscribe(channel: string): Promise<unknown>;
}

export interface RedisPubSubOptions {
  prefix: string;
  commandTimeoutMs: number;
  /** PUBLISH on the store's command connection. */
  publish(channel: string, message: string): Promise<unknown>;
  /** A new, not yet connected subscriber connection that hands every message to `onMessage`. */
  openSubscriber(onMessage: (channel: string, message: string) => void): SubscriberConnection;
  log?: { warn(obj: object, msg: string): void } | undefined;
}

/**
 * Pub/sub over Redis channels `<prefix>ch:<channel>`. A connection in subscribe mode can do nothing else, so
 * subscribers get a connection of their own, made on the first subscribe and shared by every channel.
 */
export class RedisPubSub implements PubSub {
  readonly #options: RedisPubSubOptions;
  #subscriber: SubscriberConnection | null = null;
  #subscriberReady: Promise<SubscriberConnection> | null = null;
  readonly #channels = new Map<string, { handlers: Set<(message: string) => void>; ready: Promise<void> }>();

  constructor(options: RedisPubSubOptions) {
    this.#options = options;
  }

  async publish(channel: string, message: string): Promise<void> {
    await guard(() => this.#options.publish(this.#channel(channel), message));
  }

  async subscribe(channel: string, handler: (message: string) => void): Promise<() => Promise<void>> {
    const name = this.#channel(channel);
    const timeoutMs = this.#options.commandTimeoutMs;
    let entry = this.#channels.get(name);
    if (!entry) {
      // Concurrent subscribers of one channel share one SUBSCRIBE and all wait for its acknowledgement.
      const ready = (async () => {
        const subscriber = await this.#subscriberConnection();
        // The subscriber retries forever in the background and a command on it would wait just as long, so
        // a reconnecting subscriber gets the command timeout to come back, then the caller gets an error.
        if (subscriber.status !== 'ready') {
          const back = new Promise<void>((resolve) => subscriber.once('ready', () => resolve()));
          await withTimeout(back, timeoutMs, 'Redis is not reachable (subscriber connection down)');
        }
        await withTimeout(
          subscriber.subscribe(name),
          timeoutMs,
          `Redis did not acknowledge SUBSCRIBE within ${timeoutMs} ms`,
        );
      })();
      const created = { handlers: new Set<(message: string) => void>(), ready };
      entry = created;
      this.#channels.set(name, created);
      ready.catch(() => {
        if (this.#channels.get(name) === created) this.#channels.delete(name);
      });
    }
    const joined = entry;
    await guard(() => joined.ready);
    joined.handlers.add(handler);
    return async () => {
      if (!joined.handlers.delete(handler) || joined.handlers.size > 0 || this.#channels.get(name) !== joined) return;
      this.#channels.delete(name);
      // Best effort: if Redis is down the channel is simply renewed on reconnect and its messages ignored.
      await withTimeout(
        this.#subscriber?.unsubscribe(name) ?? Promise.resolve(),
        timeoutMs,
        'UNSUBSCRIBE timed out',
      ).catch(() => undefined);
    };
  }

  async close(): Promise<void> {
    const subscriber = this.#subscriberReady ? await this.#subscriberReady.catch(() => this.#subscriber) : null;
    this.#channels.clear();
    if (subscriber) await quitOrDisconnect(subscriber);
  }

  #channel(channel: string): string {
    return `${this.#options.prefix}ch:${channel}`;
  }

  #deliver(channel: string, message: string): void {
    for (const handler of this.#channels.get(channel)?.handlers ?? []) {
      try {
        handler(message);
      } catch (err) {
        this.#options.log?.warn({ err, channel }, 'a pub/sub handler threw');
      }
    }
  }

  /** The subscriber connection, made on first subscribe. */
  #subscriberConnection(): Promise<SubscriberConnection> {
    this.#subscriberReady ??= (async () => {
      const subscriber = this.#options.openSubscriber((channel, message) => this.#deliver(channel, message));
      this.#subscriber = subscriber;
      try {
        await subscriber.connect();
      } catch (err) {
        // Let a later subscribe try again with a fresh connection instead of reusing this failure.
        subscriber.disconnect();
        this.#subscriber = null;
        this.#subscriberReady = null;
        throw err;
      }
      return subscriber;
    })();
    return this.#subscriberReady;
  }
}
