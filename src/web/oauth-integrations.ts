import { Router, type Request, type Response } from 'express';
import { z } from 'zod';
import type { Actor } from '../admin/types.js';
import type { Config } from '../config.js';
import { isAppError, type ErrorDetail } from '../errors.js';
import { GRANT_TYPES, type CredentialInput } from '../oauth/integration-credentials.js';
import type { IntegrationInput, IntegrationService, IntegrationView } from '../oauth/integrations.js';
import {
  appOnlyScope,
  defaultScopes,
  MICROSOFT_TENANT_EXPLANATION,
  PROVIDER_KINDS,
  revocationNote,
} from '../oauth/providers/index.js';
import type { RotationResult } from '../tokens/secret-rotation.js';
import type { OAuthWarning } from '../tokens/warnings.js';
import { actorOf } from './auth.js';
import { confirmed } from './confirm.js';
import type { WebContext } from './context.js';
import { renderPage } from './render.js';
import { setFlash } from './session.js';
import { PAGE_DEFAULT, pageOf, pageQuery } from './pagination.js';
import { formCheckbox, formText, parseId, parseInput } from './validate.js';

/**
 * OAuth 2.0 integrations: /admin/oauth-integrations pages and /api/v1/oauth-integrations. The credentials (client
 * secret, client certificate, service-account key) are write-only.
 */

const provider = z.enum(PROVIDER_KINDS, {
  error: `choose ${PROVIDER_KINDS.slice(0, -1).join(', ')} or ${PROVIDER_KINDS.at(-1)}`,
});
const name = z.string().trim().min(1, 'enter a name').max(100, 'at most 100 characters');
const clientId = z.string().trim().min(1, 'enter the client ID').max(512, 'at most 512 characters');
const clientSecret = z.string().min(1, 'enter the client secret').max(2048, 'at most 2048 characters');
const grantType = z.enum(GRANT_TYPES, { error: `choose ${GRANT_TYPES.join(', ')}` });
// A PEM with a 4096-bit RSA key and a certificate chain, or a key file, fits well within this.
const clientCertificate = z.string().min(1).max(20_000, 'at most 20000 characters');
const serviceAccountKey = z.string().min(1).max(20_000, 'at most 20000 characters');
const scope = z
  .string()
  .regex(/^[\x21\x23-\x5B\x5D-\x7E]{1,512}$/, 'a scope is printable ASCII without spaces or quotes');
const url = z.string().trim().max(2048).url({ error: 'expected a URL' });
const date = z
  .string()
  .regex(/^\d{4}-\d{2}-\d{2}$/, 'expected a date YYYY-MM-DD')
  .refine((s) => !Number.isNaN(Date.parse(s)), 'not a valid date');
const tenant = z.string().trim().max(253);

const apiFields = {
  name,
  provider,
  grantType: grantType.optional(),
  clientId: clientId.optional(),
  clientCertificate: clientCertificate.optional(),
  serviceAccountKey: serviceAccountKey.optional(),
  tenant: tenant.optional(),
  authority: url.optional(),
  graphBaseUrl: url.optional(),
  scopes: z.array(scope).max(30).optional(),
  issuer: url.optional(),
  authorizationEndpoint: url.optional(),
  tokenEndpoint: url.optional(),
  revocationEndpoint: url.optional(),
  secretExpiresAt: date.nullable().optional(),
  googleInTesting: z.boolean().optional(),
};
// Exported for the OpenAPI document (openapi.ts), which is generated from the schemas that validate.
// Which credential a grant type needs is the service's rule (it names the missing field).
export const createBody = z.strictObject({ ...apiFields, clientSecret: clientSecret.optional() });
export const updateBody = createBody;
export const patchBody = updateBody.partial();
export const rotateBody = z.strictObject({
  clientSecret: clientSecret.optional(),
  clientCertificate: clientCertificate.optional(),
  serviceAccountKey: serviceAccountKey.optional(),
  expiresAt: date.nullable().optional(),
});

const scopeList = formText(z.string().max(4000).optional())
  .transform((s) => (s ? s.split(/[\s,]+/).filter(Boolean) : undefined))
  .pipe(z.array(scope).max(30).optional());
const formFields = {
  name: formText(name),
  provider: formText(provider),
  grantType: formText(grantType.optional()),
  clientId: formText(clientId.optional()),
  clientSecret: formText(clientSecret.optional()),
  clientCertificate: formText(clientCertificate.optional()),
  serviceAccountKey: formText(serviceAccountKey.optional()),
  tenant: formText(tenant.optional()),
  authority: formText(url.optional()),
  graphBaseUrl: formText(url.optional()),
  scopes: scopeList,
  issuer: formText(url.optional()),
  authorizationEndpoint: formText(url.optional()),
  tokenEndpoint: formText(url.optional()),
  revocationEndpoint: formText(url.optional()),
  secretExpiresAt: formText(date.optional()),
  googleInTesting: formCheckbox,
};
const integrationForm = z.object(formFields);
const rotateForm = z.object({
  clientSecret: formText(clientSecret.optional()),
  clientCertificate: formText(clientCertificate.optional()),
  serviceAccountKey: formText(serviceAccountKey.optional()),
  expiresAt: formText(date.optional()),
});

type FormValues = Partial<Record<keyof typeof formFields, unknown>>;

/** The page's language (res.locals.t, set by the language middleware or renderPage). */
function tr(res: Response, key: string, params?: Record<string, string>): string {
  const t = res.locals.t as ((key: string, params?: Record<string, string>) => string) | undefined;
  return t ? t(key, params) : key;
}

function formErrors(err: unknown): ErrorDetail[] | null {
  if (isAppError(err) && err.code === 'validation_failed')
    return err.details.length ? err.details : [{ field: '', message: err.message }];
  return null;
}

export interface OAuthIntegrationsRouterDeps {
  config: Pick<Config, 'MAILGATE_ALLOW_INSECURE_OAUTH'>;
  integrations: Pick<
    IntegrationService,
    'redirectUri' | 'list' | 'page' | 'get' | 'view' | 'create' | 'update' | 'delete'
  >;
  /** Expiring secrets, grants to re-authorize, Google apps in testing: over every integration. */
  warnings(): Promise<OAuthWarning[]>;
  /** Proves the new credential with the provider before switching to it. */
  rotateClientSecret(
    integrationId: string,
    input: CredentialInput & { expiresAt: string | null },
    actor: Actor,
    ip?: string,
  ): Promise<RotationResult>;
}

export function oauthIntegrationsRouter({ auth, eta }: WebContext, deps: OAuthIntegrationsRouterDeps): Router {
  const integrations = deps.integrations;
  const router = Router();

  function viewOf(v: IntegrationView) {
    return { ...v, revocationNote: revocationNote(v.provider) };
  }

  async function showForm(
    res: Response,
    options: { integration?: IntegrationView; form?: FormValues; errors?: ErrorDetail[]; rotateErrors?: ErrorDetail[] },
    status = 200,
  ) {
    const warnings = options.integration
      ? (await deps.warnings()).filter((w) => w.target === `oauth_integration:${options.integration!.id}`)
      : [];
    const t = res.locals.t as (key: string, params?: Record<string, string>) => string;
    renderPage(
      res,
      eta,
      'oauth-integration',
      {
        title: options.integration
          ? t('integrations.titleOne', { name: options.integration.name })
          : t('integrations.new'),
        integration: options.integration ? viewOf(options.integration) : null,
        form:
          options.form ??
          (options.integration
            ? { ...options.integration, scopes: options.integration.scopes.join(' ') }
            : { provider: 'google' }),
        errors: options.errors ?? [],
        rotateErrors: options.rotateErrors ?? [],
        redirectUri: integrations.redirectUri,
        tenantExplanation: MICROSOFT_TENANT_EXPLANATION,
        providerKinds: PROVIDER_KINDS,
        grantTypes: GRANT_TYPES,
        appOnlyScopes: {
          microsoft: appOnlyScope({ provider: 'microsoft' }, 'smtp'),
          graph: appOnlyScope({ provider: 'microsoft' }, 'graph'),
          google: appOnlyScope({ provider: 'google' }, 'smtp'),
        },
        defaultScopes: Object.fromEntries(PROVIDER_KINDS.map((kind) => [kind, defaultScopes(kind).join(' ')])),
        allowInsecure: deps.config.MAILGATE_ALLOW_INSECURE_OAUTH,
        warnings,
      },
      status,
    );
  }

  function formInput(req: Request): IntegrationInput {
    const f = parseInput(integrationForm, req.body);
    return {
      name: f.name,
      provider: f.provider,
      grantType: f.grantType,
      clientId: f.clientId,
      clientSecret: f.clientSecret,
      clientCertificate: f.clientCertificate,
      serviceAccountKey: f.serviceAccountKey,
      tenant: f.tenant,
      authority: f.authority,
      graphBaseUrl: f.graphBaseUrl,
      scopes: f.scopes,
      issuer: f.issuer,
      authorizationEndpoint: f.authorizationEndpoint,
      tokenEndpoint: f.tokenEndpoint,
      revocationEndpoint: f.revocationEndpoint,
      secretExpiresAt: f.secretExpiresAt ?? null,
      googleInTesting: f.googleInTesting,
    };
  }

  /** The submitted values to show again after an error: never a credential. */
  function echo(req: Request): FormValues {
    const {
      clientSecret: _s,
      clientCertificate: _cc,
      serviceAccountKey: _k,
      _csrf: _c,
      ...rest
    } = (req.body ?? {}) as Record<string, unknown>;
    return { ...rest, googleInTesting: rest.googleInTesting === 'on' };
  }

  router.get('/admin/oauth-integrations', auth.page('admin'), async (req, res) => {
    // A page of integrations in id order, as the JSON list: the page costs the same at 10 and 10,000 integrations.
    const { limit, cursor } = parseInput(pageQuery, req.query);
    const [docs, warnings] = await Promise.all([
      integrations.page({ limit: limit + 1, after: cursor }),
      deps.warnings(),
    ]);
    const page = pageOf(
      docs,
      limit,
      (d) => d.id,
      (d) => integrations.view(d),
    );
    const href = (params: Record<string, string>) => {
      const query = new URLSearchParams({ ...(limit !== PAGE_DEFAULT ? { limit: String(limit) } : {}), ...params });
      return `/admin/oauth-integrations${query.size ? `?${query.toString()}` : ''}`;
    };
    renderPage(res, eta, 'oauth-integrations', {
      title: (res.locals.t as (key: string) => string)('integrations.title'),
      integrations: page.items,
      warnings,
      redirectUri: integrations.redirectUri,
      nextHref: page.next ? href({ cursor: page.next }) : null,
      firstHref: cursor ? href({}) : null,
    });
  });

  router.get('/admin/oauth-integrations/new', auth.page('sysadmin'), async (_req, res) => {
    await showForm(res, {});
  });

  router.post('/admin/oauth-integrations', auth.page('sysadmin'), async (req, res) => {
    try {
      const doc = await integrations.create(formInput(req), actorOf(res), req.ip);
      const delegated = (doc.value.grantType ?? 'authorization_code') === 'authorization_code';
      setFlash(
        req,
        'ok',
        tr(res, delegated ? 'integrations.flash.addedRedirect' : 'integrations.flash.added', { name: doc.value.name }),
      );
      res.redirect(303, `/admin/oauth-integrations/${doc.id}`);
    } catch (err) {
      const errors = formErrors(err);
      if (!errors) throw err;
      await showForm(res, { form: echo(req), errors }, 400);
    }
  });

  router.get('/admin/oauth-integrations/:id', auth.page('admin'), async (req, res) => {
    const doc = await integrations.get(parseId(req));
    await showForm(res, { integration: integrations.view(doc) });
  });

  router.post('/admin/oauth-integrations/:id', auth.page('sysadmin'), async (req, res) => {
    const id = parseId(req);
    const current = await integrations.get(id);
    try {
      const doc = await integrations.update(id, formInput(req), actorOf(res), req.ip);
      setFlash(req, 'ok', tr(res, 'integrations.flash.updated', { name: doc.value.name }));
      res.redirect(303, `/admin/oauth-integrations/${id}`);
    } catch (err) {
      const errors = formErrors(err);
      if (!errors) throw err;
      await showForm(res, { integration: integrations.view(current), form: echo(req), errors }, 400);
    }
  });

  router.post('/admin/oauth-integrations/:id/rotate-secret', auth.page('sysadmin'), async (req, res) => {
    const id = parseId(req);
    const current = await integrations.get(id);
    try {
      const { expiresAt, ...credentials } = parseInput(rotateForm, req.body);
      const result = await deps.rotateClientSecret(
        id,
        { ...credentials, expiresAt: expiresAt ?? null },
        actorOf(res),
        req.ip,
      );
      setFlash(
        req,
        'ok',
        tr(res, 'integrations.rotate.done', { proof: tr(res, `integrations.proof.${result.provenWith}`) }),
      );
      res.redirect(303, `/admin/oauth-integrations/${id}`);
    } catch (err) {
      const errors = formErrors(err);
      if (!errors) throw err;
      await showForm(res, { integration: integrations.view(current), rotateErrors: errors }, 400);
    }
  });

  router.post('/admin/oauth-integrations/:id/delete', auth.page('sysadmin'), async (req, res) => {
    const id = parseId(req);
    const current = await integrations.get(id);
    if (
      !confirmed(req, res, eta, {
        title: tr(res, 'integrations.delete.button'),
        question: tr(res, 'integrations.delete.question', { name: current.value.name }),
        consequence: tr(res, 'integrations.delete.consequence'),
        cancelHref: `/admin/oauth-integrations/${id}`,
      })
    )
      return;
    await integrations.delete(id, actorOf(res), req.ip);
    setFlash(req, 'ok', tr(res, 'integrations.flash.deleted'));
    res.redirect(303, '/admin/oauth-integrations');
  });

  // JSON API
  router.get('/api/v1/oauth-integrations', auth.api('admin'), async (req, res) => {
    const { limit, cursor } = parseInput(pageQuery, req.query);
    const docs = await integrations.page({ limit: limit + 1, after: cursor });
    res.json(
      pageOf(
        docs,
        limit,
        (d) => d.id,
        (d) => integrations.view(d),
      ),
    );
  });

  router.post('/api/v1/oauth-integrations', auth.api('admin'), async (req, res) => {
    const body = parseInput(createBody, req.body);
    const doc = await integrations.create(body, actorOf(res), req.ip);
    res.status(201).json(integrations.view(doc));
  });

  router.get('/api/v1/oauth-integrations/:id', auth.api('admin'), async (req, res) => {
    res.json(integrations.view(await integrations.get(parseId(req))));
  });

  router.put('/api/v1/oauth-integrations/:id', auth.api('admin'), async (req, res) => {
    const body = parseInput(updateBody, req.body);
    res.json(integrations.view(await integrations.update(parseId(req), body, actorOf(res), req.ip)));
  });

  router.patch('/api/v1/oauth-integrations/:id', auth.api('admin'), async (req, res) => {
    const id = parseId(req);
    const body = parseInput(patchBody, req.body);
    const current = await integrations.get(id);
    const v = current.value;
    const merged: IntegrationInput = {
      name: v.name,
      provider: v.provider,
      clientId: v.clientId,
      grantType: v.grantType,
      tenant: v.tenant ?? undefined,
      authority: v.authority ?? undefined,
      graphBaseUrl: v.graphBaseUrl ?? undefined,
      scopes: v.scopes,
      issuer: v.issuer ?? undefined,
      authorizationEndpoint: v.authorizationEndpoint ?? undefined,
      tokenEndpoint: v.tokenEndpoint ?? undefined,
      revocationEndpoint: v.revocationEndpoint ?? undefined,
      secretExpiresAt: v.secretExpiresAt,
      googleInTesting: v.googleInTesting,
      ...body,
    };
    res.json(integrations.view(await integrations.update(id, merged, actorOf(res), req.ip, current.version)));
  });

  router.delete('/api/v1/oauth-integrations/:id', auth.api('admin'), async (req, res) => {
    await integrations.delete(parseId(req), actorOf(res), req.ip);
    res.status(204).end();
  });

  router.post('/api/v1/oauth-integrations/:id/rotate-secret', auth.api('admin'), async (req, res) => {
    const id = parseId(req);
    const { expiresAt, ...credentials } = parseInput(rotateBody, req.body);
    await integrations.get(id);
    const result = await deps.rotateClientSecret(
      id,
      { ...credentials, expiresAt: expiresAt ?? null },
      actorOf(res),
      req.ip,
    );
    res.json({ ...result, integration: integrations.view(await integrations.get(id)) });
  });

  return router;
}
