import type { MailServices } from '../mail/service.js';
import type { NotifyEvent } from './model.js';

/**
 * Email alerts go out through a healthy server other than the one the event is about: an alert about a dead
 * mailbox sent through that mailbox would never arrive. They are queued like any other mail (durable, retried),
 * with an idempotency key per delivery so a retried delivery never queues a second copy.
 */

/**
 * The sender recorded on alert messages (in place of an API key id): marks them as mailgate's own, so a failed
 * alert is not itself reported by email, which could go on forever.
 */
export const ALERT_SENDER = 'system:notifications';

export interface AlertRoute {
  /** Whether the server's OAuth grant (if any) is usable: `active` or no grant needed. */
  grantStatus(serverId: string): Promise<string | null>;
}

export async function healthyServerFor(
  mail: Pick<MailServices, 'servers'>,
  route: AlertRoute,
  avoidServerId: string | null,
): Promise<{ id: string; name: string } | null> {
  if (!(await mail.servers.sendingEnabled())) return null;
  // The default server first, then the first page of the others: never every server.
  const defaultId = await mail.servers.defaultServerId();
  const first = defaultId ? await mail.servers.get(defaultId).catch(() => null) : null;
  const servers = (await mail.servers.page({ limit: 100 })).items;
  const ordered = [...(first ? [first] : []), ...servers.filter((s) => s.id !== first?.id)];
  for (const s of ordered) {
    if (s.id === avoidServerId || s.paused) continue;
    if (s.authMethod === 'oauth2' && (await route.grantStatus(s.id)) !== 'active') continue;
    return { id: s.id, name: s.name };
  }
  return null;
}

export function alertMessage(event: NotifyEvent): { subject: string; text: string } {
  const subject = `[mailgate] ${event.type}: ${event.message}`.slice(0, 200).replace(/[\r\n]+/g, ' ');
  const text = [
    event.message,
    '',
    event.hint,
    '',
    `Event: ${event.type}`,
    `Target: ${event.target}`,
    `Occurred at: ${event.occurredAt}`,
    `Event id: ${event.id}`,
  ].join('\n');
  return { subject, text };
}

export async function sendAlertEmail(
  mail: Pick<MailServices, 'servers' | 'queue'>,
  route: AlertRoute,
  delivery: { id: string; to: string[]; event: NotifyEvent; serverId: string | null },
): Promise<string> {
  const server = await healthyServerFor(mail, route, delivery.serverId);
  if (!server)
    throw new Error(
      delivery.serverId
        ? `no healthy SMTP server other than ${delivery.serverId} to send the alert through`
        : 'no healthy SMTP server to send the alert through',
    );
  const { subject, text } = alertMessage(delivery.event);
  const queued = await mail.queue.enqueue(
    { serverId: server.id, to: delivery.to, subject, text },
    { apiKeyId: ALERT_SENDER, idempotencyKey: `notify:${delivery.id}` },
  );
  return queued.id;
}
