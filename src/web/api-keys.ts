import { Router, type Response } from 'express';
import { z } from 'zod';
import type { CreatedApiKey } from '../admin/api-keys.js';
import { MAX_GRACE_SECONDS } from '../admin/api-keys.js';
import { keyPolicyFields } from '../admin/key-policy.js';
import type { ApiScope } from '../admin/types.js';
import { AppError } from '../errors.js';
import { actorOf } from './auth.js';
import type { WebContext } from './context.js';
import { renderPage } from './render.js';
import { setFlash } from './session.js';
import { formList, formNumber, formText, parseId, parseInput } from './validate.js';

/** API keys: the /admin/api-keys page and /api/v1/api-keys. A new key is shown once, in the creating response. */

const scope = z.enum(['send', 'admin']);
const name = z.string().trim().min(1, 'enter a name').max(100, 'at most 100 characters');

const createForm = z.object({
  name: formText(z.string({ error: 'enter a name' }).max(100, 'at most 100 characters')),
  scopes: formList(scope).refine((list) => list.length > 0, 'tick at least one scope'),
  serverId: formText(keyPolicyFields.serverId),
  // One text input: addresses and *@domain entries separated by commas, spaces or new lines.
  allowedFrom: z.preprocess((v) => {
    if (typeof v !== 'string') return v;
    const list = v.split(/[\s,]+/).filter(Boolean);
    return list.length > 0 ? list : undefined;
  }, keyPolicyFields.allowedFrom),
  rateLimitPerMinute: formNumber(keyPolicyFields.rateLimitPerMinute),
});
const createBody = z.strictObject({
  name,
  scopes: z.array(scope).min(1, 'give at least one scope'),
  ...keyPolicyFields,
});

type FormValues = { name?: string; serverId?: string; allowedFrom?: string; rateLimitPerMinute?: string };

const graceHours = z
  .number()
  .int()
  .min(0)
  .max(MAX_GRACE_SECONDS / 3600, `at most ${MAX_GRACE_SECONDS / 3600} hours`);
const rotateForm = z.object({ graceHours: formNumber(graceHours.optional()) });
const rotateBody = z.strictObject({ graceSeconds: z.number().int().min(0).max(MAX_GRACE_SECONDS).default(86_400) });

export function apiKeysRouter(ctx: WebContext): Router {
  const { deps, auth, eta } = ctx;
  const router = Router();

  /** A key bound to a server that does not exist could never send: refused like any other bad field. */
  async function checkServer(serverId: string | undefined): Promise<void> {
    if (serverId !== undefined && !(await deps.mail.servers.resolve(serverId))) {
      throw new AppError('validation_failed', {
        message: `serverId: no SMTP server ${serverId}`,
        details: [{ field: 'serverId', message: 'no such SMTP server' }],
      });
    }
  }

  async function showPage(
    res: Response,
    extra: {
      created?: CreatedApiKey;
      errors?: { field: string; message: string }[];
      form?: FormValues & { scopes?: ApiScope[] };
    } = {},
    status = 200,
  ) {
    renderPage(
      res,
      eta,
      'api-keys',
      {
        title: 'API keys',
        keys: await deps.apiKeys.list(),
        created: extra.created ?? null,
        errors: extra.errors ?? [],
        form: extra.form ?? {},
      },
      status,
    );
  }

  router.get('/admin/api-keys', auth.page('sysadmin'), async (_req, res) => {
    await showPage(res);
  });

  router.post('/admin/api-keys', auth.page('sysadmin'), async (req, res) => {
    const parsed = createForm.safeParse(req.body);
    if (!parsed.success) {
      const body = req.body as Record<string, unknown>;
      const errors = parsed.error.issues.map((i) => ({ field: String(i.path[0] ?? ''), message: i.message }));
      const form: FormValues = {};
      for (const field of ['name', 'serverId', 'allowedFrom', 'rateLimitPerMinute'] as const)
        if (typeof body[field] === 'string') form[field] = body[field];
      await showPage(res, { errors, form }, 400);
      return;
    }
    const actor = actorOf(res);
    const { name: keyName, scopes, ...policy } = parsed.data;
    if (policy.serverId !== undefined && !(await deps.mail.servers.resolve(policy.serverId))) {
      await showPage(
        res,
        {
          errors: [{ field: 'serverId', message: 'no such SMTP server' }],
          form: { name: keyName, serverId: policy.serverId },
        },
        400,
      );
      return;
    }
    const created = await deps.apiKeys.create({
      name: keyName,
      scopes,
      policy,
      actor,
      ...(req.ip ? { ip: req.ip } : {}),
    });
    res.setHeader('Cache-Control', 'no-store');
    await showPage(res, { created }, 201);
  });

  router.post('/admin/api-keys/:id/revoke', auth.page('sysadmin'), async (req, res) => {
    const id = parseId(req);
    const actor = actorOf(res);
    const key = await deps.apiKeys.revoke(id, actor, req.ip);
    setFlash(req, 'ok', `API key "${key.name}" (${key.prefix}…) is revoked.`);
    res.redirect(303, '/admin/api-keys');
  });

  router.post('/admin/api-keys/:id/rotate', auth.page('sysadmin'), async (req, res) => {
    const id = parseId(req);
    const hours = parseInput(rotateForm, req.body).graceHours ?? 24;
    const actor = actorOf(res);
    const { successor } = await deps.apiKeys.rotate(id, hours * 3600, actor, req.ip);
    res.setHeader('Cache-Control', 'no-store');
    await showPage(res, { created: successor }, 201);
  });

  router.post('/api/v1/api-keys', auth.api('admin'), async (req, res) => {
    const { name: keyName, scopes, ...policy } = parseInput(createBody, req.body);
    await checkServer(policy.serverId);
    const actor = actorOf(res);
    const created = await deps.apiKeys.create({
      name: keyName,
      scopes,
      policy,
      actor,
      ...(req.ip ? { ip: req.ip } : {}),
    });
    res.setHeader('Cache-Control', 'no-store');
    res.status(201).json(created);
  });

  router.get('/api/v1/api-keys', auth.api('admin'), async (_req, res) => {
    res.json({ items: await deps.apiKeys.list() });
  });

  router.get('/api/v1/api-keys/:id', auth.api('admin'), async (req, res) => {
    const key = await deps.apiKeys.get(parseId(req));
    if (!key) throw new AppError('not_found', { message: 'No API key with that id.' });
    res.json(key);
  });

  router.delete('/api/v1/api-keys/:id', auth.api('admin'), async (req, res) => {
    const id = parseId(req);
    const actor = actorOf(res);
    const key = await deps.apiKeys.revoke(id, actor, req.ip);
    res.json(key);
  });

  router.post('/api/v1/api-keys/:id/rotate', auth.api('admin'), async (req, res) => {
    const id = parseId(req);
    const { graceSeconds } = parseInput(rotateBody, req.body ?? {});
    const actor = actorOf(res);
    const { successor, previous } = await deps.apiKeys.rotate(id, graceSeconds, actor, req.ip);
    res.setHeader('Cache-Control', 'no-store');
    res.status(201).json({ ...successor, previous });
  });

  return router;
}
