import { Router, type Request, type Response } from 'express';
import { z } from 'zod';
import type { ApiKeyService, CreatedApiKey } from '../admin/api-keys.js';
import { MAX_GRACE_SECONDS } from '../admin/api-keys.js';
import type { KeyHandoff } from '../admin/key-handoff.js';
import { keyPolicyFields, type KeyPolicy } from '../admin/key-policy.js';
import type { Config } from '../config.js';
import { AppError } from '../errors.js';
import type { MailServices } from '../mail/service.js';
import {
  createForm,
  errorFields,
  formValues,
  OneTimeKey,
  policyForm,
  smtpSettings,
  type FormValues,
} from './api-keys-page.js';
import { actorOf } from './auth.js';
import { confirmed } from './confirm.js';
import type { WebContext } from './context.js';
import { translatorFor } from './language.js';
import { renderPage } from './render.js';
import { setFlash } from './session.js';
import { PAGE_DEFAULT, pageOf, pageQuery, type PageQuery } from './pagination.js';
import { formNumber, parseId, parseInput } from './validate.js';

/**
 * API keys: the /admin/api-keys page and /api/v1/api-keys. A new key is shown once: in the creating response of
 * the API, and on the page after the redirect that follows the form (so a reload never creates a second key).
 */

const scope = z.enum(['send', 'admin']);
const name = z.string().trim().min(1, 'enter a name').max(100, 'at most 100 characters');

export const createBody = z.strictObject({
  name,
  scopes: z.array(scope).min(1, 'give at least one scope'),
  ...keyPolicyFields,
});

/** PATCH /api/v1/api-keys/:id: the policy fields to change; `null` clears one, an absent field stays. */
export const policyPatch = z.strictObject({
  serverId: keyPolicyFields.serverId.nullable(),
  allowedFrom: keyPolicyFields.allowedFrom.nullable(),
  rateLimitPerMinute: keyPolicyFields.rateLimitPerMinute.nullable(),
});

const graceHours = z
  .number()
  .int()
  .min(0)
  .max(MAX_GRACE_SECONDS / 3600, `at most ${MAX_GRACE_SECONDS / 3600} hours`);
const rotateForm = z.object({ graceHours: formNumber(graceHours.optional()) });
export const rotateBody = z.strictObject({
  graceSeconds: z.number().int().min(0).max(MAX_GRACE_SECONDS).default(86_400),
});

export interface ApiKeysRouterDeps {
  apiKeys: Pick<ApiKeyService, 'create' | 'get' | 'list' | 'page' | 'revoke' | 'rotate' | 'setPolicy'>;
  /** To offer the servers a key may be bound to, and to check that one exists. */
  servers: Pick<MailServices['servers'], 'resolve' | 'list' | 'page'>;
  /** Seals a new key in the session between the post and the page that shows it. */
  handoff: KeyHandoff;
  /** The submission front's settings, shown with a new key. */
  config: Config;
}

export function apiKeysRouter({ auth, eta }: WebContext, deps: ApiKeysRouterDeps): Router {
  const router = Router();
  /** The policy's server choices: the first servers and those the keys name, never every server. */
  async function serverChoices(keys: Array<{ policy?: { serverId?: string } | null }>) {
    const first = (await deps.servers.page({ limit: 200 })).items.map((s) => ({ id: s.id, name: s.name }));
    const named = [...new Set(keys.map((k) => k.policy?.serverId).filter((id): id is string => Boolean(id)))];
    const others = named.filter((id) => !first.some((s) => s.id === id));
    for (const s of await Promise.all(others.map((id) => deps.servers.resolve(id))))
      if (s) first.push({ id: s.id, name: s.name });
    return first;
  }
  const oneTime = new OneTimeKey(deps.handoff);

  /** A key bound to a server that does not exist could never send: refused like any other bad field. */
  async function checkServer(serverId: string | undefined | null): Promise<void> {
    if (serverId != null && !(await deps.servers.resolve(serverId))) {
      throw new AppError('validation_failed', {
        message: `serverId: no SMTP server ${serverId}`,
        details: [{ field: 'serverId', message: 'no such SMTP server' }],
      });
    }
  }

  async function showPage(
    req: Request,
    res: Response,
    extra: {
      created?: CreatedApiKey | null;
      errors?: string[];
      form?: FormValues;
      editing?: string;
      list?: PageQuery;
    } = {},
    status = 200,
  ) {
    const t = translatorFor(req);
    const created = extra.created ?? null;
    if (created) res.setHeader('Cache-Control', 'no-store');
    // A page of keys in id order, as the JSON list; the key whose form is being corrected is shown on any page.
    const { limit, cursor } = extra.list ?? { limit: PAGE_DEFAULT };
    const page = pageOf(await deps.apiKeys.page({ limit: limit + 1, after: cursor }), limit, (k) => k.id);
    const keys = page.items;
    if (extra.editing && !keys.some((k) => k.id === extra.editing)) {
      const editing = await deps.apiKeys.get(extra.editing);
      if (editing) keys.unshift(editing);
    }
    const href = (params: Record<string, string>) => {
      const query = new URLSearchParams({ ...(limit !== PAGE_DEFAULT ? { limit: String(limit) } : {}), ...params });
      return `/admin/api-keys${query.size ? `?${query.toString()}` : ''}`;
    };
    renderPage(
      res,
      eta,
      'api-keys',
      {
        title: t('apiKeys.title'),
        keys,
        servers: await serverChoices(keys),
        created,
        smtp: created?.scopes.includes('send') ? smtpSettings(deps.config) : null,
        errors: (extra.errors ?? []).map((field) => ({ field, message: t(`apiKeys.error.${field}`) })),
        form: extra.form ?? {},
        editing: extra.editing ?? null,
        nextHref: page.next ? href({ cursor: page.next }) : null,
        firstHref: cursor ? href({}) : null,
      },
      status,
    );
  }

  router.get('/admin/api-keys', auth.page('sysadmin'), async (req, res) => {
    await showPage(req, res, { created: oneTime.take(req), list: parseInput(pageQuery, req.query) });
  });

  router.post('/admin/api-keys', auth.page('sysadmin'), async (req, res) => {
    const parsed = createForm.safeParse(req.body);
    if (!parsed.success) {
      await showPage(req, res, { errors: errorFields(parsed.error), form: formValues(req.body) }, 400);
      return;
    }
    const { name: keyName, scopes, ...policy } = parsed.data;
    if (policy.serverId !== undefined && !(await deps.servers.resolve(policy.serverId))) {
      await showPage(req, res, { errors: ['serverId'], form: formValues(req.body) }, 400);
      return;
    }
    const created = await deps.apiKeys.create({
      name: keyName,
      scopes,
      policy,
      actor: actorOf(res),
      ...(req.ip ? { ip: req.ip } : {}),
    });
    oneTime.put(req, created);
    res.redirect(303, '/admin/api-keys');
  });

  router.post('/admin/api-keys/:id/policy', auth.page('sysadmin'), async (req, res) => {
    const id = parseId(req);
    const parsed = policyForm.safeParse(req.body);
    const bad = parsed.success ? [] : errorFields(parsed.error);
    if (parsed.success && parsed.data.serverId !== undefined && !(await deps.servers.resolve(parsed.data.serverId)))
      bad.push('serverId');
    if (!parsed.success || bad.length > 0) {
      await showPage(req, res, { errors: bad, form: formValues(req.body), editing: id }, 400);
      return;
    }
    const key = await deps.apiKeys.setPolicy(id, parsed.data, actorOf(res), req.ip);
    setFlash(req, 'ok', translatorFor(req)('apiKeys.flash.policySaved', { name: key.name }));
    res.redirect(303, '/admin/api-keys');
  });

  router.post('/admin/api-keys/:id/revoke', auth.page('sysadmin'), async (req, res) => {
    const id = parseId(req);
    const key = await deps.apiKeys.get(id);
    if (!key) throw new AppError('not_found', { message: 'No API key with that id.' });
    const t = translatorFor(req);
    const ok = confirmed(req, res, eta, {
      title: t('apiKeys.revoke.title'),
      question: t('apiKeys.revoke.question', { name: key.name, prefix: key.prefix }),
      consequence: t('apiKeys.revoke.consequence'),
      cancelHref: '/admin/api-keys',
    });
    if (!ok) return;
    await deps.apiKeys.revoke(id, actorOf(res), req.ip);
    setFlash(req, 'ok', t('apiKeys.flash.revoked', { name: key.name, prefix: key.prefix }));
    res.redirect(303, '/admin/api-keys');
  });

  router.post('/admin/api-keys/:id/rotate', auth.page('sysadmin'), async (req, res) => {
    const id = parseId(req);
    const parsed = rotateForm.safeParse(req.body);
    if (!parsed.success) {
      await showPage(req, res, { errors: ['graceHours'] }, 400);
      return;
    }
    const hours = parsed.data.graceHours ?? 24;
    const { successor } = await deps.apiKeys.rotate(id, hours * 3600, actorOf(res), req.ip);
    oneTime.put(req, successor);
    res.redirect(303, '/admin/api-keys');
  });

  router.post('/api/v1/api-keys', auth.api('admin'), async (req, res) => {
    const { name: keyName, scopes, ...policy } = parseInput(createBody, req.body);
    await checkServer(policy.serverId);
    const created = await deps.apiKeys.create({
      name: keyName,
      scopes,
      policy,
      actor: actorOf(res),
      ...(req.ip ? { ip: req.ip } : {}),
    });
    res.setHeader('Cache-Control', 'no-store');
    res.status(201).json(created);
  });

  router.get('/api/v1/api-keys', auth.api('admin'), async (req, res) => {
    const { limit, cursor } = parseInput(pageQuery, req.query);
    res.json(pageOf(await deps.apiKeys.page({ limit: limit + 1, after: cursor }), limit, (k) => k.id));
  });

  router.get('/api/v1/api-keys/:id', auth.api('admin'), async (req, res) => {
    const key = await deps.apiKeys.get(parseId(req));
    if (!key) throw new AppError('not_found', { message: 'No API key with that id.' });
    res.json(key);
  });

  router.patch('/api/v1/api-keys/:id', auth.api('admin'), async (req, res) => {
    const id = parseId(req);
    const patch = parseInput(policyPatch.partial(), req.body ?? {});
    await checkServer(patch.serverId);
    const current = await deps.apiKeys.get(id);
    if (!current) throw new AppError('not_found', { message: 'No API key with that id.' });
    const merged: Record<string, unknown> & KeyPolicy = { ...current.policy };
    for (const [field, value] of Object.entries(patch)) {
      if (value === null) delete merged[field];
      else if (value !== undefined) merged[field] = value;
    }
    res.json(await deps.apiKeys.setPolicy(id, merged, actorOf(res), req.ip));
  });

  router.delete('/api/v1/api-keys/:id', auth.api('admin'), async (req, res) => {
    const key = await deps.apiKeys.revoke(parseId(req), actorOf(res), req.ip);
    res.json(key);
  });

  router.post('/api/v1/api-keys/:id/rotate', auth.api('admin'), async (req, res) => {
    const id = parseId(req);
    const { graceSeconds } = parseInput(rotateBody, req.body ?? {});
    const { successor, previous } = await deps.apiKeys.rotate(id, graceSeconds, actorOf(res), req.ip);
    res.setHeader('Cache-Control', 'no-store');
    res.status(201).json({ ...successor, previous });
  });

  return router;
}
