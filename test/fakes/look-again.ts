import { expect } from 'vitest';
import { DELIVERIES, EVENTS, type EventDoc } from '../../src/notify/model.js';
import type { Services } from '../../src/services.js';
import type { Store } from '../../src/store/store.js';

/**
 * For tests that prove something happened once and no more: instead of waiting in case a second time comes,
 * each instance runs one more pass of its periodic notification checks and of its token scheduler at the current
 * time (the scheduler's pass only once its background pass has finished, so the two never overlap), then the
 * notification outbox is waited on to empty (every event fanned out, every delivery through). Whatever the
 * instances would still do at this time, they have done.
 */
export async function afterInstancesLookAgain(instances: Array<{ services: Services; store: Store }>): Promise<void> {
  for (const { services } of instances) {
    await services.tokenScheduler.stop();
    await services.tokenScheduler.runDue();
    await services.tokenScheduler.start();
    await services.notify.check();
  }
  const store = instances[0]!.store;
  await expect
    .poll(
      async () =>
        (await store.list<EventDoc>(EVENTS)).every((e) => e.value.fannedOut) &&
        (await store.list(DELIVERIES)).length === 0,
      { timeout: 20_000, message: 'notification outbox empty' },
    )
    .toBe(true);
}

/** Notification events of `type` in the store (one per transition, whatever the channels). */
export async function notifyEventsOfType(store: Store, type: string, target?: string): Promise<number> {
  const events = await store.list<EventDoc>(EVENTS);
  return events.filter((e) => e.value.event.type === type && (target === undefined || e.value.event.target === target))
    .length;
}
