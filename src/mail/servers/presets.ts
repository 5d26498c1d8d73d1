import type { Protocol, ServiceProvider } from './model.js';

/** Where the well-known providers' SMTP submission lives; a server created with one of them takes these values. */
export const PROVIDER_PRESETS: Record<
  Exclude<ServiceProvider, 'custom'>,
  { host: string; port: number; protocol: Protocol; tls: boolean; label: string; rateLimitPerMinute: number | null }
> = {
  // Google's and Yahoo's limits are per day: no per-minute preset (a "too many" answer slows that mailbox only).
  gmail: {
    label: 'Gmail / Google Workspace',
    host: 'smtp.gmail.com',
    port: 465,
    protocol: 'smtps',
    tls: false,
    rateLimitPerMinute: null,
  },
  yahoo: {
    label: 'Yahoo! Mail',
    host: 'smtp.mail.yahoo.com',
    port: 465,
    protocol: 'smtps',
    tls: false,
    rateLimitPerMinute: null,
  },
  // Exchange Online allows 30 messages a minute per mailbox.
  microsoft: {
    label: 'Microsoft 365 / Outlook',
    host: 'smtp.office365.com',
    port: 587,
    protocol: 'smtp',
    tls: true,
    rateLimitPerMinute: 30,
  },
};

/** The provider's per-minute limit, filled in when a server is created without one. */
export function presetRate(provider: ServiceProvider): number | null {
  return provider === 'custom' ? null : PROVIDER_PRESETS[provider].rateLimitPerMinute;
}
