import type { Protocol, ServiceProvider } from './model.js';

/** Where the well-known providers' SMTP submission lives; a server created with one of them takes these values. */
export const PROVIDER_PRESETS: Record<
  Exclude<ServiceProvider, 'custom'>,
  { host: string; port: number; protocol: Protocol; tls: boolean; label: string }
> = {
  gmail: { label: 'Gmail / Google Workspace', host: 'smtp.gmail.com', port: 465, protocol: 'smtps', tls: false },
  yahoo: { label: 'Yahoo! Mail', host: 'smtp.mail.yahoo.com', port: 465, protocol: 'smtps', tls: false },
  microsoft: { label: 'Microsoft 365 / Outlook', host: 'smtp.office365.com', port: 587, protocol: 'smtp', tls: true },
};
