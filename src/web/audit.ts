import { Router } from 'express';
import { z } from 'zod';
import type { AuditLog } from '../admin/audit.js';
import type { WebContext } from './context.js';
import { renderPage } from './render.js';
import { parseInput } from './validate.js';

/** The audit log: /admin/audit (readable by both roles) and GET /api/v1/audit, newest first, paged with `before`. */

export const pageQuery = z.object({
  before: z
    .string()
    .regex(/^\d{1,16}-\d{1,16}$/, 'expected an entry id from nextBefore')
    .optional(),
  limit: z.coerce.number().int().min(1).max(200).optional(),
});

export function auditRouter({ auth, eta }: WebContext, deps: { audit: Pick<AuditLog, 'list'> }): Router {
  const router = Router();

  router.get('/admin/audit', auth.page('admin'), async (req, res) => {
    const query = parseInput(pageQuery, req.query);
    const page = await deps.audit.list({ before: query.before, limit: query.limit ?? 50 });
    renderPage(res, eta, 'audit', { title: 'Audit log', page, first: query.before === undefined });
  });

  router.get('/api/v1/audit', auth.api('admin'), async (req, res) => {
    const query = parseInput(pageQuery, req.query);
    const page = await deps.audit.list({ before: query.before, limit: query.limit ?? 50 });
    res.json({ items: page.entries, nextBefore: page.nextBefore });
  });

  return router;
}
