import { Router } from 'express';
import type { Metrics } from '../metrics.js';
import type { Store } from '../store/store.js';
import { metricsAccess } from './metrics-access.js';

export interface ReadinessCheck {
  name: string;
  /** Resolves with details when healthy enough to serve; rejects when not. Warnings do not fail readiness. */
  check(): Promise<{ ok: boolean; detail?: unknown }>;
}

/**
 * /healthz: the process answers. /readyz: the store answers (and other checks report). /metrics: Prometheus,
 * behind MAILGATE_METRICS_TOKEN when it is set. The probes answer anyone, so they name no record.
 */
export function healthRouter(deps: {
  store: Store;
  metrics: Metrics;
  readinessChecks?: ReadinessCheck[];
  metricsToken?: string;
}): Router {
  const router = Router();
  router.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });
  router.get('/readyz', async (_req, res) => {
    const checks: Record<string, { ok: boolean; detail?: unknown }> = {};
    try {
      await withTimeout(deps.store.ping(), 2000);
      checks.store = { ok: true, detail: { kind: deps.store.kind } };
    } catch {
      checks.store = { ok: false, detail: { kind: deps.store.kind, error: 'not reachable' } };
    }
    for (const c of deps.readinessChecks ?? []) {
      try {
        checks[c.name] = await withTimeout(c.check(), 2000);
      } catch {
        checks[c.name] = { ok: false, detail: { error: 'check failed' } };
      }
    }
    const ready = checks.store?.ok === true;
    res.status(ready ? 200 : 503).json({ status: ready ? 'ready' : 'unavailable', checks });
  });
  router.get('/metrics', metricsAccess(deps.metricsToken), async (_req, res) => {
    res.type(deps.metrics.registry.contentType).send(await deps.metrics.registry.metrics());
  });
  return router;
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms);
    }),
  ]);
}
