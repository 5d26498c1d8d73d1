import type { Notifier } from './events.js';

/**
 * A grant's health as notifications: `needs_reauth` (the provider refused its refresh token), `failing`
 * (temporary failures for more than an hour) and back to `ok` (re-authorized, or a refresh went through again),
 * each transition reported once.
 */

export const REFRESH_FAILING_AFTER_MS = 60 * 60_000;

type GrantRef = { serverId: string; mailbox: string };

export interface GrantEvents {
  needsReauth(grant: GrantRef & { hint?: string | undefined }): Promise<void>;
  refreshFailing(grant: GrantRef & { since: number; error: string }): Promise<void>;
  recovered(grant: GrantRef): Promise<void>;
}

export function grantEvents(deps: { notifier: Notifier; serverLink: (id: string) => string }): GrantEvents {
  const { notifier, serverLink } = deps;
  const target = (g: GrantRef) => `smtp_server:${g.serverId}`;
  return {
    async needsReauth(g) {
      await notifier.transition({
        dimension: 'grant',
        target: target(g),
        to: 'needs_reauth',
        event: {
          type: 'grant.needs_reauth',
          target: target(g),
          serverId: g.serverId,
          message: `The mailbox ${g.mailbox} needs re-authorization: the provider refused its refresh token. Its mail is held.`,
          hint: `${g.hint ? `${g.hint} ` : ''}Press Re-authorize on ${serverLink(g.serverId)}`,
        },
      });
    },
    async refreshFailing(g) {
      await notifier.transition({
        dimension: 'grant',
        target: target(g),
        to: 'failing',
        event: {
          type: 'grant.refresh_failing',
          target: target(g),
          serverId: g.serverId,
          message: `Refreshing the token of ${g.mailbox} has failed since ${new Date(g.since).toISOString()} (${g.error}).`,
          hint: `mailgate keeps retrying; check the provider's status and ${serverLink(g.serverId)}`,
        },
      });
    },
    async recovered(g) {
      await notifier.transition({
        dimension: 'grant',
        target: target(g),
        to: 'ok',
        event: (from) =>
          from === 'ok'
            ? null
            : {
                type: 'grant.recovered',
                target: target(g),
                serverId: g.serverId,
                message:
                  from === 'needs_reauth'
                    ? `The mailbox ${g.mailbox} is authorized again; held mail goes out.`
                    : `Refreshing the token of ${g.mailbox} works again.`,
                hint: 'Nothing to do.',
              },
      });
    },
  };
}
