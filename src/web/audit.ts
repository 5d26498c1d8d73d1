import { Router } from 'express';
import { z } from 'zod';
import type { AuditLog } from '../admin/audit.js';
import type { WebContext } from './context.js';
import { renderPage } from './render.js';
import { PAGE_DEFAULT, PAGE_MAX } from './pagination.js';
import { parseInput } from './validate.js';

/** The audit log: /admin/audit (readable by both roles) and GET /api/v1/audit, newest first, paged with `before`. */

const entryId = z.string().regex(/^\d{1,16}-\d{1,16}$/, 'expected an entry id from next');
const pageQuery = z.object({
  before: entryId.optional(),
  limit: z.coerce.number().int().min(1).max(200).optional(),
});
/** The list rule of the API (`limit` up to 500, `cursor`); `before` stays as an alias of `cursor`. */
const apiQuery = z.object({
  before: entryId.optional(),
  cursor: entryId.optional(),
  limit: z.coerce.number().int().min(1).max(PAGE_MAX).optional(),
});

export function auditRouter({ auth, eta }: WebContext, deps: { audit: Pick<AuditLog, 'list'> }): Router {
  const router = Router();

  router.get('/admin/audit', auth.page('admin'), async (req, res) => {
    const query = parseInput(pageQuery, req.query);
    const page = await deps.audit.list({ before: query.before, limit: query.limit ?? 50 });
    renderPage(res, eta, 'audit', { title: 'Audit log', page, first: query.before === undefined });
  });

  router.get('/api/v1/audit', auth.api('admin'), async (req, res) => {
    const query = parseInput(apiQuery, req.query);
    const page = await deps.audit.list({ before: query.cursor ?? query.before, limit: query.limit ?? PAGE_DEFAULT });
    // `nextBefore` is kept for clients written before `next`.
    res.json({
      items: page.entries,
      ...(page.nextBefore ? { next: page.nextBefore } : {}),
      nextBefore: page.nextBefore,
    });
  });

  return router;
}
