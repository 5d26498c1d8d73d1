import type { Request, Response, Router } from 'express';
import { z } from 'zod';
import type { SmtpServerView } from '../mail/servers.js';
import { createServerInput, updateServerInput } from '../mail/servers.js';
import type { AuditContext } from '../mail/servers.js';
import { actorOf } from './auth.js';
import type { WebContext } from './context.js';
import { translatorFor } from './language.js';
import { apiState, serverState, type ServerStateDeps } from './smtp-server-state.js';
import { forgetStaleTest, testResultJson } from './smtp-server-tests.js';
import type { SmtpServersRouterDeps } from './smtp-servers.js';
import { pageQuery } from './pagination.js';
import { parseId, parseInput } from './validate.js';

/** The list rule, plus `search` (name, description, host, address, user or id; a bounded scan, see pages.ts). */
export const serverListQuery = pageQuery.extend({ search: z.string().max(200).optional() });

/** /api/v1/smtp-servers: CRUD with each server's state, Test connection of a stored server, resume, the outgoing switch. */

export interface ServerApiDeps extends SmtpServersRouterDeps {
  stateDeps: ServerStateDeps;
  refuseHostChangeWhileAuthorized: (id: string, host: string | undefined) => Promise<void>;
  resume: (req: Request, res: Response, id: string) => Promise<number>;
  auditCtx: (req: Request, res: Response) => AuditContext;
}

export function registerServerApiRoutes(router: Router, { auth }: WebContext, deps: ServerApiDeps): void {
  const { mail, stateDeps, refuseHostChangeWhileAuthorized, resume, auditCtx } = deps;
  const sendingEnabled = () => mail.servers.sendingEnabled();

  // ------------------------------------------------------------------------------------------ API

  async function withApiState(req: Request, server: SmtpServerView, enabled: boolean) {
    return { ...server, state: apiState(await serverState(stateDeps, server, enabled, translatorFor(req))) };
  }

  router.get('/api/v1/smtp-servers', auth.api('admin'), async (req, res) => {
    const { limit, cursor, search } = parseInput(serverListQuery, req.query);
    const enabled = await sendingEnabled();
    const page = await mail.servers.page({ limit, cursor, search });
    const items = await Promise.all(page.items.map((s) => withApiState(req, s, enabled)));
    res.json({ items, ...(page.next ? { next: page.next } : {}), settings: await mail.servers.settings() });
  });

  router.post('/api/v1/smtp-servers', auth.api('admin'), async (req, res) => {
    const input = parseInput(createServerInput, req.body ?? {});
    res.status(201).json(await mail.servers.create(input, auditCtx(req, res)));
  });

  router.get('/api/v1/smtp-servers/:id', auth.api('admin'), async (req, res) => {
    res.json(await withApiState(req, await mail.servers.get(parseId(req)), await sendingEnabled()));
  });

  const update = async (req: Request, res: Response) => {
    const id = parseId(req);
    const input = parseInput(updateServerInput, req.body ?? {});
    await refuseHostChangeWhileAuthorized(id, input.host);
    const before = await mail.servers.resolve(id);
    const updated = await mail.servers.update(id, input, auditCtx(req, res));
    await forgetStaleTest(mail, deps.lastTests, id, before);
    res.json(updated);
  };
  router.patch('/api/v1/smtp-servers/:id', auth.api('admin'), update);
  router.put('/api/v1/smtp-servers/:id', auth.api('admin'), update);

  router.delete('/api/v1/smtp-servers/:id', auth.api('admin'), async (req, res) => {
    const id = parseId(req);
    await mail.servers.remove(id, auditCtx(req, res));
    await deps.lastTests.clear(id);
    res.status(204).end();
  });

  router.post('/api/v1/smtp-servers/:id/test', auth.api('admin'), async (req, res) => {
    const id = parseId(req);
    const server = await mail.servers.get(id);
    const r = await mail.test(id);
    await deps.lastTests.record(id, { ok: r.ok, kind: 'connection', code: r.code ?? null });
    await deps.audit.record({
      actor: actorOf(res),
      action: 'smtp_server.test',
      target: `smtp_server:${id}`,
      outcome: r.ok ? 'success' : 'failure',
      ...(req.ip ? { ip: req.ip } : {}),
      detail: { durationMs: r.durationMs, ...(r.code ? { code: r.code } : {}) },
    });
    res.json(testResultJson(req, r, `${server.effective.host}:${server.effective.port}`));
  });

  router.post('/api/v1/smtp-servers/:id/resume', auth.api('admin'), async (req, res) => {
    const id = parseId(req);
    await mail.servers.get(id);
    res.json({ released: await resume(req, res, id) });
  });

  const outgoingBody = z.strictObject({ enabled: z.boolean() });
  router.put('/api/v1/outgoing-mail', auth.api('admin'), async (req, res) => {
    const { enabled } = parseInput(outgoingBody, req.body ?? {});
    res.json(await mail.servers.setOutgoingEnabled(enabled, auditCtx(req, res)));
  });

  router.get('/api/v1/outgoing-mail', auth.api('admin'), async (_req, res) => {
    res.json(await mail.servers.settings());
  });
}
