import type { Request } from 'express';
import { z } from 'zod';
import { AppError, type ErrorDetail } from '../errors.js';

/**
 * Input is parsed once at the edge and the parsed value handed on: handlers call `parseInput(schema, req.body)`
 * and never touch the raw body again. A failure names every bad field and changes nothing.
 */

export function zodDetails(error: z.ZodError): ErrorDetail[] {
  return error.issues.map((issue) => ({
    field: issue.path.map((p, i) => (typeof p === 'number' ? `[${p}]` : `${i > 0 ? '.' : ''}${String(p)}`)).join(''),
    message: issue.code === 'unrecognized_keys' ? `unknown field(s): ${issue.keys.join(', ')}` : issue.message,
  }));
}

export function parseInput<S extends z.ZodType>(schema: S, input: unknown): z.output<S> {
  const result = schema.safeParse(input);
  if (!result.success) {
    const details = zodDetails(result.error);
    throw new AppError('validation_failed', {
      message: details.map((d) => (d.field ? `${d.field}: ${d.message}` : d.message)).join('; '),
      details,
    });
  }
  return result.data;
}

/** A path parameter that is an id: short, printable, no slashes. */
export const idParam = z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'not a valid id');

export function parseId(req: Request, name = 'id'): string {
  return parseInput(idParam, req.params[name]);
}

// HTML forms send strings: blank means "not given", a ticked checkbox sends "on" (or its value).

/** A text input: trimmed; blank becomes undefined. */
export const formText = <S extends z.ZodType>(inner: S) =>
  z.preprocess((v) => (typeof v === 'string' ? (v.trim() === '' ? undefined : v.trim()) : v), inner);

/** A checkbox: absent → false; "on"/"true"/"1" → true. Also accepts real booleans from JSON. */
export const formCheckbox = z.preprocess((v) => v === true || v === 'on' || v === 'true' || v === '1', z.boolean());

/** A number input: blank → undefined, "25" → 25. */
export const formNumber = <S extends z.ZodType>(inner: S) =>
  z.preprocess((v) => (typeof v === 'string' ? (v.trim() === '' ? undefined : Number(v)) : v), inner);

/** A multi-value field (checkbox group, repeated inputs): a lone string becomes a one-element list. */
export const formList = <S extends z.ZodType>(inner: S) =>
  z.preprocess(
    (v): unknown[] => (v === undefined || v === '' ? [] : Array.isArray(v) ? (v as unknown[]) : [v]),
    z.array(inner),
  );
