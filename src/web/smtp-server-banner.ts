import type { RequestHandler } from 'express';
import type { Translate } from '../i18n/i18n.js';
import type { SmtpServers } from '../mail/servers.js';
import { bannerSource } from './banners.js';

/** The site-wide line while outgoing mail is disabled (switch or MAILGATE_SEND_DISABLED), linking to the switch. */
export function outgoingMailBanner(servers: Pick<SmtpServers, 'settings'>): RequestHandler {
  return bannerSource(async (res) => {
    const settings = await servers.settings();
    if (settings.outgoingEnabled && !settings.disabledByEnvironment) return [];
    const t = res.locals.t as Translate;
    if (settings.disabledByEnvironment) return [{ kind: 'warning', message: t('servers.banner.disabledByEnv') }];
    return [
      {
        kind: 'warning',
        message: t('servers.banner.disabled'),
        href: '/admin/smtp-servers#outgoing',
        linkText: t('servers.banner.link'),
      },
    ];
  });
}
