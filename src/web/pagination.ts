import { z } from 'zod';

/**
 * The list rule of the JSON API (DESIGN.md "Scale"): `?limit=` (default 50, at most 500) and `?cursor=` (the `next`
 * of the previous page, opaque to clients), answered as `{items, next}` with `next` absent on the last page.
 */

export const PAGE_DEFAULT = 50;
export const PAGE_MAX = 500;

export const pageQuery = z.object({
  limit: z.coerce
    .number('expected a number')
    .int('expected a whole number')
    .min(1, 'at least 1')
    .max(PAGE_MAX, `at most ${PAGE_MAX}`)
    .default(PAGE_DEFAULT),
  cursor: z
    .string()
    .max(200, 'not a cursor from this list')
    .regex(/^[A-Za-z0-9_.:-]+$/, 'not a cursor from this list')
    .optional(),
});

export type PageQuery = z.output<typeof pageQuery>;

export interface ListPage<T> {
  items: T[];
  next?: string;
}

/** The page of `fetched` (read with limit + 1): the first `limit`, and a cursor when one more was there. */
export function pageOf<T, V = T>(
  fetched: T[],
  limit: number,
  idOf: (item: T) => string,
  view: (item: T) => V = (item) => item as unknown as V,
): ListPage<V> {
  const items = fetched.slice(0, limit);
  const page: ListPage<V> = { items: items.map(view) };
  if (fetched.length > limit) page.next = idOf(items.at(-1)!);
  return page;
}
