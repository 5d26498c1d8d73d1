/**
 * The languages mailgate speaks and the one way to look up a text. Catalogs live in ./messages/, one file per
 * area, each holding the same keys in every language (the type of `defineMessages` and a test both check it),
 * so a page, a hint or an API error message can be shown in the reader's language. API error `code`s and
 * log lines stay English: they are for programs and operators' tools.
 */

export const LANGUAGES = ['en', 'ja'] as const;
export type Language = (typeof LANGUAGES)[number];
export const DEFAULT_LANGUAGE: Language = 'en';

/** Names of the languages in themselves, for the switch in the header. */
export const LANGUAGE_NAMES: Record<Language, string> = { en: 'English', ja: '日本語' };

export type Messages = Readonly<Record<string, string>>;

/** One area's texts: English defines the keys, every other language must have exactly those keys. */
export interface MessageCatalog<K extends string = string> {
  readonly en: Readonly<Record<K, string>>;
  readonly ja: Readonly<Record<K, string>>;
}

export function defineMessages<const E extends Record<string, string>>(catalog: {
  en: E;
  ja: Record<keyof E, string>;
}): MessageCatalog<Extract<keyof E, string>> {
  return catalog;
}

export type Params = Readonly<Record<string, string | number>>;
export type Translate = (key: string, params?: Params) => string;

export function isLanguage(value: unknown): value is Language {
  return typeof value === 'string' && (LANGUAGES as readonly string[]).includes(value);
}

/**
 * The language for a request: a remembered choice (the `mailgate_lang` cookie) wins, then the first
 * language of Accept-Language we speak, by q-value; English otherwise. Linear in the header's length.
 */
export function negotiateLanguage(cookieValue: string | undefined, acceptLanguage: string | undefined): Language {
  if (isLanguage(cookieValue)) return cookieValue;
  if (!acceptLanguage) return DEFAULT_LANGUAGE;
  let best: Language | undefined;
  let bestQ = 0;
  for (const part of acceptLanguage.slice(0, 1000).split(',')) {
    const [tag = '', ...rest] = part.trim().split(';');
    const primary = tag.trim().toLowerCase().split('-')[0];
    let q = 1;
    for (const param of rest) {
      const [name, value] = param.split('=');
      if (name?.trim() === 'q') q = Number(value);
    }
    if (!Number.isFinite(q) || q <= 0) continue;
    if (isLanguage(primary) && q > bestQ) {
      best = primary;
      bestQ = q;
    }
  }
  return best ?? DEFAULT_LANGUAGE;
}

const PLACEHOLDER = /\{(\w+)\}/g;

/** Builds a lookup over merged catalogs. A missing key returns the key itself (and a test keeps that from shipping). */
export function createTranslations(catalogs: readonly MessageCatalog[]): Record<Language, Translate> {
  const merged = { en: new Map<string, string>(), ja: new Map<string, string>() };
  for (const catalog of catalogs) {
    for (const lang of LANGUAGES) {
      for (const [key, text] of Object.entries(catalog[lang])) {
        if (merged[lang].has(key)) throw new Error(`The message key ${key} is defined twice (${lang}).`);
        merged[lang].set(key, text);
      }
    }
  }
  const make =
    (lang: Language): Translate =>
    (key, params) => {
      const text = merged[lang].get(key) ?? merged.en.get(key) ?? key;
      if (!params) return text;
      return text.replace(PLACEHOLDER, (whole, name: string) => (name in params ? String(params[name]) : whole));
    };
  return { en: make('en'), ja: make('ja') };
}

/** The placeholders a text uses, for the test that both languages fill the same ones. */
export function placeholdersOf(text: string): string[] {
  return [...text.matchAll(PLACEHOLDER)].map((m) => m[1] ?? '').sort();
}
