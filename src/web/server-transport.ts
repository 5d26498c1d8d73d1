import { Router } from 'express';
import { z } from 'zod';
import type { MailServices } from '../mail/service.js';
import { switchToGraph } from '../mail/servers/switch.js';
import { actorOf } from './auth.js';
import type { WebContext } from './context.js';
import { parseId, parseInput } from './validate.js';

/**
 * Switch to Microsoft Graph (DESIGN.md "Beyond SMTP AUTH"): offered on a server page when SMTP refused with
 * 535 5.7.139 or 5.7.30. The server keeps its id, settings and queue; its protocol becomes `graph` and the
 * browser goes straight on to Authorize (a 307 repeats the post, CSRF token included), which asks for the
 * Graph scope because of the new protocol.
 */

const switchForm = z.object({
  _csrf: z.string().optional(),
  oauthIntegrationId: z.preprocess(
    (v) => (v === '' ? undefined : v),
    z
      .string()
      .regex(/^[A-Za-z0-9_-]{1,64}$/, 'not a valid integration id')
      .optional(),
  ),
});

export function serverTransportRouter({ auth }: WebContext, deps: { mail: Pick<MailServices, 'servers'> }): Router {
  const router = Router();

  router.post('/admin/smtp-servers/:id/switch-to-graph', auth.page('sysadmin'), async (req, res) => {
    const id = parseId(req);
    const form = parseInput(switchForm, req.body ?? {});
    await switchToGraph(deps.mail.servers, id, form.oauthIntegrationId, {
      actor: actorOf(res),
      ...(req.ip ? { ip: req.ip } : {}),
    });
    res.redirect(307, `/admin/smtp-servers/${encodeURIComponent(id)}/authorize`);
  });

  return router;
}
