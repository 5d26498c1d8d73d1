import type { Clock } from '../clock.js';
import type { WarningSource } from './watch.js';

/**
 * What the banner on every admin page names: grants that need re-authorization and client secrets that expire
 * within 14 days (or expired). Page views must stay cheap, so the answer is computed at most once per TTL per
 * instance and dropped early when an event is emitted here or on another instance (pub/sub).
 */

export interface AttentionItem {
  kind: 'needs_reauth' | 'secret_expiring' | 'secret_expired';
  /** `smtp_server:<id>` or `oauth_integration:<id>`. */
  target: string;
  /** The page that fixes it. */
  href: string;
  /** The server's or integration's name. */
  name: string;
  message: string;
}

export interface Attention {
  items(): Promise<AttentionItem[]>;
  forget(): void;
}

const KINDS = new Set(['needs_reauth', 'secret_expiring', 'secret_expired']);

export function hrefOf(target: string): string {
  const [kind, id = ''] = target.split(':', 2);
  if (kind === 'smtp_server') return `/admin/smtp-servers/${encodeURIComponent(id)}`;
  if (kind === 'oauth_integration') return `/admin/oauth-integrations/${encodeURIComponent(id)}`;
  return '/admin/notifications';
}

export function createAttention(deps: {
  warnings: WarningSource;
  nameOf: (target: string) => Promise<string>;
  clock: Clock;
  ttlMs: number;
}): Attention {
  let cached: { at: number; items: Promise<AttentionItem[]> } | null = null;
  return {
    items() {
      const now = deps.clock.now();
      if (cached && now - cached.at < deps.ttlMs && now >= cached.at) return cached.items;
      const items = deps.warnings().then((ws) =>
        Promise.all(
          ws
            .filter((w) => KINDS.has(w.kind))
            .map(async (w) => ({
              kind: w.kind as AttentionItem['kind'],
              target: w.target,
              href: hrefOf(w.target),
              name: await deps.nameOf(w.target).catch(() => w.target),
              message: w.message,
            })),
        ),
      );
      items.catch(() => {
        cached = null;
      });
      cached = { at: now, items };
      return items;
    },
    forget() {
      cached = null;
    },
  };
}
