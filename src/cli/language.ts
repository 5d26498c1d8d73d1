import { DEFAULT_LANGUAGE, createTranslations, type Language, type Translate } from '../i18n/i18n.js';
import { catalogs } from '../i18n/messages/index.js';

/** The terminal's language as POSIX orders the variables (LC_ALL, then LC_MESSAGES, then LANG): `ja…` or English. */
export function cliLanguage(env: Readonly<Record<string, string | undefined>>): Language {
  const locale = env.LC_ALL || env.LC_MESSAGES || env.LANG || '';
  return /^ja([_.@-]|$)/i.test(locale) ? 'ja' : DEFAULT_LANGUAGE;
}

export function cliTranslate(env: Readonly<Record<string, string | undefined>>): Translate {
  return createTranslations(catalogs)[cliLanguage(env)];
}
