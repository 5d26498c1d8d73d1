import { grantTypeOf } from '../oauth/integration-credentials.js';
import { Router, type Request, type Response } from 'express';
import type { Actor } from '../admin/types.js';
import type { Config } from '../config.js';
import { AppError } from '../errors.js';
import type { Translate } from '../i18n/i18n.js';
import type { Logger } from '../log.js';
import { AuthorizationFailure, type AuthorizeService } from '../tokens/authorize.js';
import type { IntegrationService } from '../oauth/integrations.js';
import { revocationNote } from '../oauth/providers/index.js';
import type { TokenService } from '../tokens/refresh.js';
import type { DisconnectResult } from '../tokens/revoke.js';
import type { OAuthWarning } from '../tokens/warnings.js';
import { actorOf } from './auth.js';
import { confirmed } from './confirm.js';
import type { WebContext } from './context.js';
import { oauthHint } from './hints.js';
import { renderPage } from './render.js';
import { setFlash } from './session.js';
import { parseId } from './validate.js';

/**
 * The Authorize redirect, the OAuth callback and Disconnect.
 *
 * Authorize is a CSRF-checked POST. Its answer is a small page whose own CSP adds the provider's
 * authorization endpoint origin to `form-action` and whose form (GET, submitted by /static/oauth-redirect.js,
 * or by the user without JavaScript) goes to the provider: a plain 303 to the provider would be blocked,
 * because Chromium applies the server page's `form-action 'self'` to every redirect after a form POST.
 *
 * Every return path is a fixed local path built from ids of our own records (the transaction's server id),
 * never from the query, so the callback cannot be turned into an open redirect.
 */

export interface OAuthPanel {
  grant: ReturnType<TokenService['view']> | null;
  integration: {
    id: string;
    name: string;
    provider: string;
    misconfigured: { code: string; hint: string } | null;
    grantType?: string;
  } | null;
  revocationNote: string | null;
  /** Expiring client secret, Google app in testing, rejected client credentials: before they break this server. */
  warnings: OAuthWarning[];
}

export interface OAuthPanelDeps {
  tokens: Pick<TokenService, 'get' | 'view'>;
  integrations: Pick<IntegrationService, 'find'>;
  warnings(): Promise<OAuthWarning[]>;
}

/** What views/partials/smtp-oauth.eta needs for one server; the server page passes it as `oauth`. */
export async function oauthPanelData(
  deps: OAuthPanelDeps,
  server: { id: string; oauthIntegrationId: string | null },
): Promise<OAuthPanel> {
  const grantDoc = await deps.tokens.get(server.id);
  // A server may still name an integration that was deleted since: the panel then shows none.
  const integrationDoc = server.oauthIntegrationId ? await deps.integrations.find(server.oauthIntegrationId) : null;
  return {
    grant: grantDoc ? deps.tokens.view(grantDoc) : null,
    integration: integrationDoc
      ? {
          id: integrationDoc.id,
          name: integrationDoc.value.name,
          provider: integrationDoc.value.provider,
          misconfigured: integrationDoc.value.misconfigured,
          grantType: grantTypeOf(integrationDoc.value),
        }
      : null,
    revocationNote: integrationDoc ? revocationNote(integrationDoc.value.provider) : null,
    warnings: integrationDoc
      ? (await deps.warnings()).filter(
          (w) => w.target === `oauth_integration:${integrationDoc.id}` && w.kind !== 'integration_misconfigured',
        )
      : [],
  };
}

function serverPage(serverId: string): string {
  return `/admin/smtp-servers/${encodeURIComponent(serverId)}`;
}

export interface OAuthCallbackRouterDeps {
  config: Pick<Config, 'MAILGATE_BASE_URL'>;
  log: Logger;
  authorize: Pick<AuthorizeService, 'begin' | 'complete'>;
  tokens: Pick<TokenService, 'get' | 'view'>;
  /** Deletes the server's tokens and revokes them at the provider where it can. */
  disconnect(serverId: string, actor: Actor, ip?: string): Promise<DisconnectResult>;
}

export function oauthCallbackRouter({ auth, eta }: WebContext, deps: OAuthCallbackRouterDeps): Router {
  const router = Router();

  router.post('/admin/smtp-servers/:id/authorize', auth.page('sysadmin'), async (req, res) => {
    const serverId = parseId(req);
    const { url, providerOrigin } = await deps.authorize.begin({
      serverId,
      sessionId: req.sessionID,
      actor: actorOf(res),
    });
    const target = new URL(url);
    const csp = String(res.getHeader('Content-Security-Policy') ?? '');
    res.setHeader('Content-Security-Policy', csp.replace(/form-action [^;]*/, `form-action 'self' ${providerOrigin}`));
    res.setHeader('Cache-Control', 'no-store');
    res.setHeader('Referrer-Policy', 'no-referrer');
    renderPage(res, eta, 'oauth-redirect', {
      title: (res.locals.t as Translate)('oauthRedirect.title'),
      action: `${target.origin}${target.pathname}`,
      params: [...target.searchParams.entries()].map(([name, value]) => ({ name, value })),
      providerOrigin,
      serverId,
    });
  });

  router.get('/oauth/callback', auth.page('sysadmin'), async (req, res) => {
    res.setHeader('Referrer-Policy', 'no-referrer');
    res.setHeader('Cache-Control', 'no-store');
    const callbackUrl = new URL(req.originalUrl, deps.config.MAILGATE_BASE_URL);
    try {
      const { serverId, mailbox } = await deps.authorize.complete({
        callbackUrl,
        sessionId: req.sessionID,
        actor: actorOf(res),
        ip: req.ip,
      });
      setFlash(req, 'ok', (res.locals.t as Translate)('oauthCallback.authorized', { mailbox }));
      res.redirect(303, serverPage(serverId));
    } catch (err) {
      if (!(err instanceof AuthorizationFailure)) throw err;
      deps.log.info({ reason: err.reason }, 'OAuth callback refused');
      renderPage(
        res,
        eta,
        'oauth-callback-error',
        {
          title: (res.locals.t as Translate)('oauthCallback.title'),
          reason: err.reason,
          ...callbackFailureText(res.locals.t as Translate, res.locals.lang as string, err),
          back: err.serverId ? serverPage(err.serverId) : '/admin/smtp-servers',
        },
        err.reason === 'foreign_session' ? 403 : 400,
      );
    }
  });

  async function disconnect(req: Request, res: Response) {
    const serverId = parseId(req);
    return deps.disconnect(serverId, actorOf(res), req.ip);
  }

  router.post('/admin/smtp-servers/:id/disconnect', auth.page('sysadmin'), async (req, res) => {
    const t = res.locals.t as Translate;
    const confirmation = {
      title: t('servers.oauth.confirmTitle'),
      question: t('servers.oauth.confirmQuestion'),
      consequence: t('servers.oauth.confirmConsequence'),
      cancelHref: serverPage(parseId(req)),
    };
    if (!confirmed(req, res, eta, confirmation)) return;
    const result = await disconnect(req, res);
    const where = result.revokedAtProvider ? 'and revoked at the provider' : 'locally';
    setFlash(
      req,
      'ok',
      `Disconnected ${result.mailbox}: tokens deleted ${where}.${result.note ? ` ${result.note}` : ''} Queued mail for this server stays held until someone authorizes again.`,
    );
    res.redirect(303, serverPage(result.serverId));
  });

  router.post('/api/v1/smtp-servers/:id/disconnect', auth.api('admin'), async (req, res) => {
    res.json(await disconnect(req, res));
  });

  router.get('/api/v1/smtp-servers/:id/oauth', auth.api('admin'), async (req, res) => {
    const serverId = parseId(req);
    const doc = await deps.tokens.get(serverId);
    if (!doc) throw new AppError('not_found', { message: 'This server has no authorized mailbox.' });
    res.json(deps.tokens.view(doc));
  });

  return router;
}

/** The refusal in the reader's language: English keeps the exact message; others by reason and hint code. */
function callbackFailureText(
  t: Translate,
  lang: string,
  err: AuthorizationFailure,
): { message: string; hint?: string } {
  const { params, hintCode } = err.translation;
  const hint = hintCode ? oauthHint(t, lang, hintCode, err.hint) : err.hint;
  if (lang === 'en') return { message: err.message, ...(hint ? { hint } : {}) };
  const key = `oauthFailure.${err.reason}`;
  const message = t(key, params);
  return { message: message === key ? err.message : message, ...(hint ? { hint } : {}) };
}
