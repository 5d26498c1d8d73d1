import { createHash } from 'node:crypto';
import type { Clock } from '../clock.js';
import type { Logger } from '../log.js';
import { VersionConflictError, type Store } from '../store/store.js';
import { EVENTS, FANOUT_QUEUE, NOTIFY_CHANNEL, STATES, type EventDoc, type EventType, type StateDoc } from './model.js';

/**
 * Emitting events exactly once per transition, across every instance. The state of each target and dimension
 * (a grant's health, a server's pause, an integration's secret…) is a small document; a transition reads it at
 * version v and writes the event under an id derived from (dimension, target, v) with "must not exist yet"
 * before moving the state on with a version check. Two instances that see the same transition write the same
 * event id: one wins, the other finds it there. A crash between the two writes leaves the event stored and the
 * state behind; the next observer of the transition finds the event already there and only moves the state.
 * The event is written with its place in the fan-out schedule, so it reaches the channels even after a crash.
 */

export interface EventInput {
  type: EventType;
  target: string;
  message: string;
  hint: string;
  /** The SMTP server the event is about (email alerts avoid it). */
  serverId?: string | null;
}

export interface TransitionInput {
  /** What kind of state this is about, e.g. `grant`, `pause`, `secret`. */
  dimension: string;
  target: string;
  /** The new state; `ok` is the healthy one (no state document means ok). */
  to: string;
  /** The event this transition reports; null when it reports nothing (e.g. ok after a state nobody was told of). */
  event: ((from: string) => EventInput | null) | EventInput | null;
}

export function eventIdFor(key: string): string {
  return `ev_${createHash('sha256').update(key).digest('base64url').slice(0, 32)}`;
}

export class Notifier {
  readonly #listeners: Array<(type: EventType) => void> = [];

  constructor(
    private readonly deps: {
      store: Store;
      clock: Clock;
      log: Logger;
      /** Wakes the local worker (an event is due for fan-out). */
      wake: () => void;
    },
  ) {}

  /** Local listeners of every emitted event (the banner cache drops itself). */
  onEmit(listener: (type: EventType) => void): void {
    this.#listeners.push(listener);
  }

  /** Moves a target's state; emits the event of the transition when the state really changes. Returns whether it did. */
  async transition(input: TransitionInput): Promise<boolean> {
    const stateId = `${input.dimension}:${input.target}`;
    for (let attempt = 0; attempt < 5; attempt++) {
      const current = await this.deps.store.get<StateDoc>(STATES, stateId);
      const from = current?.value.state ?? 'ok';
      if (from === input.to) return false;
      const event = typeof input.event === 'function' ? input.event(from) : input.event;
      const version = current?.version ?? 0;
      let emitted = false;
      if (event) emitted = await this.emitOnce(`${stateId}:${version}`, event);
      try {
        await this.deps.store.put<StateDoc>(
          STATES,
          stateId,
          { state: input.to, at: this.deps.clock.now() },
          { ifVersion: version },
        );
        return emitted;
      } catch (err) {
        if (!(err instanceof VersionConflictError)) throw err;
        if (emitted) return true;
        // Someone else moved the state meanwhile: read it again and see whether there is still a transition.
      }
    }
    return false;
  }

  /** Writes an event once for `key` (a set-if-absent); false when it was already there. */
  async emitOnce(key: string, input: EventInput): Promise<boolean> {
    const id = eventIdFor(`${input.type}:${key}`);
    const now = this.deps.clock.now();
    const doc: EventDoc = {
      event: {
        id,
        type: input.type,
        occurredAt: new Date(now).toISOString(),
        target: input.target,
        message: input.message,
        hint: input.hint,
      },
      serverId: input.serverId ?? null,
    };
    try {
      await this.deps.store.put(EVENTS, id, doc, { ifVersion: 0, schedule: { queue: FANOUT_QUEUE, dueAt: now } });
    } catch (err) {
      if (err instanceof VersionConflictError) return false;
      throw err;
    }
    this.deps.log.info({ eventId: id, type: input.type, target: input.target }, 'notification event emitted');
    for (const l of this.#listeners) l(input.type);
    await this.deps.store.publish(NOTIFY_CHANNEL, input.type).catch(() => undefined);
    this.deps.wake();
    return true;
  }

  /** The current state of a target's dimension (`ok` when never recorded). */
  async stateOf(dimension: string, target: string): Promise<string> {
    return (await this.deps.store.get<StateDoc>(STATES, `${dimension}:${target}`))?.value.state ?? 'ok';
  }
}
