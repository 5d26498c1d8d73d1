/**
 * Notifications (DESIGN.md "Credentials that never die in silence"): the stored shapes of channels, events and
 * deliveries, and the names of their collections and schedules.
 */

export const EVENT_TYPES = [
  'grant.needs_reauth',
  'grant.recovered',
  'grant.refresh_failing',
  'integration.secret_expiring',
  'integration.secret_expired',
  'integration.google_in_testing',
  'server.paused',
  'server.resumed',
  'message.failed',
  'queue.backlog',
] as const;
export type EventType = (typeof EVENT_TYPES)[number];

export const CHANNELS = 'notify_channels';
/** Per channel: how its deliveries go (kept apart from the channel so edits and deliveries never conflict). */
export const CHANNEL_HEALTH = 'notify_channel_health';
/** Events, with ids derived from the transition they report: writing one is the `set if absent` of that transition. */
export const EVENTS = 'notify_events';
/** The last known state per target and dimension (grant, pause, secret…): transitions are read against it. */
export const STATES = 'notify_states';
export const DELIVERIES = 'notify_deliveries';
/** Events not yet copied into one delivery per channel. */
export const FANOUT_QUEUE = 'notify_fanout';
export const DELIVERY_QUEUE = 'notify_deliveries';
/** Pub/sub channel: something changed the banner's inputs; every instance drops its cached banner. */
export const NOTIFY_CHANNEL = 'notify:changed';

/** A channel counts as failing after this many consecutive failed deliveries. */
export const FAILING_AFTER = 3;

/** The body of every webhook POST and the content of every alert email. */
export interface NotifyEvent {
  id: string;
  type: EventType | 'test';
  /** ISO 8601. */
  occurredAt: string;
  /** `<kind>:<id>`, e.g. `smtp_server:srv_…`. */
  target: string;
  message: string;
  hint: string;
}

export type ChannelType = 'webhook' | 'email';

export interface ChannelDoc {
  name: string;
  type: ChannelType;
  /** webhook only. */
  url: string | null;
  /** webhook only; sealed (`notify_channels/<id>#secret`). */
  secret: string | null;
  /** email only: the addresses alerts go to. */
  to: string[] | null;
  /** Event types this channel gets; null = all. */
  events: EventType[] | null;
  createdAt: number;
  updatedAt: number;
}

export interface ChannelHealthDoc {
  consecutiveFailures: number;
  lastError: string | null;
  lastFailureAt: number | null;
  lastSuccessAt: number | null;
}

export interface EventDoc {
  event: NotifyEvent;
  /** The SMTP server the event is about: email alerts go through another one. */
  serverId: string | null;
  /** Copied into its deliveries (absent until then). */
  fannedOut?: boolean;
}

export interface DeliveryDoc {
  eventId: string;
  channelId: string;
  event: NotifyEvent;
  serverId: string | null;
  attempts: number;
  createdAt: number;
  lastError: string | null;
}

export interface StateDoc {
  state: string;
  at: number;
}

/** What the API and the page show of a channel: never the secret. */
export interface ChannelView {
  id: string;
  name: string;
  type: ChannelType;
  url?: string;
  hasSecret?: boolean;
  to?: string[];
  events: EventType[] | null;
  status: 'ok' | 'failing';
  consecutiveFailures: number;
  lastError: string | null;
  lastFailureAt: string | null;
  lastSuccessAt: string | null;
  createdAt: string;
  updatedAt: string;
}
