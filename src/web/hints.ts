import type { Translate } from '../i18n/i18n.js';

/**
 * Hints stored in English (a diagnosis's hint, a pause reason, an OAuth grant's last error) rendered in the
 * reader's language at display time, by their code. English keeps the stored text: it names the host, the
 * reply or the provider's words. A code without a text (a provider's own) falls back to `fallbackKey`, else
 * to the stored text.
 */
function byCode(
  t: Translate,
  lang: string,
  key: string,
  english: string | undefined,
  params: Record<string, string> = {},
  fallbackKey?: string,
): string {
  if (lang === 'en' && english) return english;
  const text = t(key, params);
  if (text !== key) return text;
  if (fallbackKey && t(fallbackKey) !== fallbackKey) return t(fallbackKey, params);
  return english ?? '';
}

/** A mail diagnosis (src/mail/diagnose.ts); `where` is host:port when the page knows it. */
export function diagnosisHint(t: Translate, lang: string, code: string, english?: string, where?: string): string {
  return byCode(t, lang, `diagnosis.${code}`, english, { where: where ?? t('diagnosisWhere.unknown') });
}

/** An OAuth diagnosis (src/oauth/diagnose.ts). */
export function oauthHint(t: Translate, lang: string, code: string, english?: string): string {
  return byCode(t, lang, `oauthDiagnosis.${code}`, english, {}, 'oauthDiagnosis.other');
}

/** An OAuth warning (src/tokens/warnings.ts): English keeps its message; other languages render its kind. */
export function warningText(
  t: Translate,
  lang: string,
  w: { kind: string; message: string; params?: Record<string, string | number> },
): string {
  if (lang === 'en' || !w.params) return w.message;
  const key = `warning.${w.kind}`;
  const text = t(key, w.params);
  return text === key ? w.message : text;
}

/** The helpers pages use as `it.locals.diagnosisHint(code, hint, where)` and `it.locals.oauthHint(code, hint)`. */
export function hintLocals(t: Translate, lang: string) {
  return {
    diagnosisHint: (code: string, english?: string, where?: string) => diagnosisHint(t, lang, code, english, where),
    oauthHint: (code: string, english?: string) => oauthHint(t, lang, code, english),
    warningText: (w: { kind: string; message: string; params?: Record<string, string | number> }) =>
      warningText(t, lang, w),
  };
}
