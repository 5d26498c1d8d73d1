import type { AppDeps } from './app.js';
import type { Config } from './config.js';
import type { Keyring } from './crypto/keyring.js';
import type { Logger } from './log.js';
import { createMetrics, type Metrics } from './metrics.js';
import type { Store } from './store/store.js';

/**
 * Builds every service from the infrastructure, in dependency order. src/main.ts calls it for the real
 * process; integration tests call it with a temporary file store or a Redis prefix, so tests run exactly
 * the code production runs. Background work (queue workers, token scheduler) starts only in start().
 */
export interface ServiceBase {
  config: Config;
  store: Store;
  keyring: Keyring;
  log: Logger;
  metrics?: Metrics;
}

export interface Services extends AppDeps {
  /** Starts background work (workers, schedulers, subscriptions). */
  start(): Promise<void>;
  /** Stops background work and waits for in-flight work to finish; does not close the store. */
  stop(): Promise<void>;
}

export async function createServices(base: ServiceBase): Promise<Services> {
  const metrics = base.metrics ?? createMetrics();
  const starters: Array<() => Promise<void>> = [];
  const stoppers: Array<() => Promise<void>> = [];

  // Areas add their services here, each after the ones it depends on.

  return {
    ...base,
    metrics,
    async start() {
      for (const s of starters) await s();
    },
    async stop() {
      for (const s of stoppers.reverse()) await s();
    },
  };
}
