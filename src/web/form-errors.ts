import type { ErrorDetail } from '../errors.js';
import type { Params, Translate } from '../i18n/i18n.js';

/**
 * Field errors of the login, setup and password forms in the reader's language, one per field, for the message
 * under each input (tied to it with aria-describedby). The forms' schemas use message keys (`form.required`, …);
 * a detail from a service (English) is shown by its kind.
 */
export function fieldErrors(
  t: Translate,
  details: readonly (ErrorDetail & { params?: Params })[],
  minLength: number,
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const d of details) {
    const field = d.field ?? '';
    if (!field || out[field]) continue;
    const key = /^(form|account|setup)\.[A-Za-z.]+$/.test(d.message)
      ? d.message
      : d.message.startsWith('must be at least')
        ? 'form.tooShort'
        : 'form.invalid';
    out[field] = t(key, d.params ?? { n: minLength });
  }
  return out;
}
