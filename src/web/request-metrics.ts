import type { ServerResponse } from 'node:http';
import type { Metrics } from '../metrics.js';

/**
 * Counts a request and times it, by method, route and status, when its response finishes. `route` is asked then:
 * the route pattern that answered, or what stands in for one (`unmatched` for a 404 no route took, `other`).
 */
export function observeRequest(
  metrics: Pick<Metrics, 'httpDuration' | 'httpRequests'>,
  method: string,
  res: ServerResponse,
  route: () => string,
): void {
  const end = metrics.httpDuration.startTimer({ method });
  res.on('finish', () => {
    const name = route();
    end({ route: name });
    metrics.httpRequests.inc({ method, route: name, status: String(res.statusCode) });
  });
}
