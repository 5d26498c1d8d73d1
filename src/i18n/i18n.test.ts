import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { LANGUAGES, createTranslations, negotiateLanguage, placeholdersOf } from './i18n.js';
import { catalogs } from './messages/index.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

function filesUnder(dir: string, ext: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const full = path.join(dir, name);
    if (statSync(full).isDirectory()) out.push(...filesUnder(full, ext));
    else if (name.endsWith(ext)) out.push(full);
  }
  return out;
}

describe('message catalogs', () => {
  it('every key exists, non-empty, in every language, with the same placeholders', () => {
    const problems: string[] = [];
    for (const catalog of catalogs) {
      const keys = new Set(LANGUAGES.flatMap((lang) => Object.keys(catalog[lang])));
      for (const key of keys) {
        const en = catalog.en[key];
        for (const lang of LANGUAGES) {
          const text = catalog[lang][key];
          if (typeof text !== 'string' || text.trim() === '') problems.push(`${key}: missing in ${lang}`);
          else if (en !== undefined && placeholdersOf(text).join() !== placeholdersOf(en).join())
            problems.push(`${key}: placeholders differ in ${lang}`);
        }
      }
    }
    expect(problems).toEqual([]);
  });

  it('no key is defined by two areas', () => {
    expect(() => createTranslations(catalogs)).not.toThrow();
  });

  it('every key a template or router names with a literal exists', () => {
    const known = new Set(catalogs.flatMap((c) => Object.keys(c.en)));
    const files = [...filesUnder(path.join(root, 'views'), '.eta'), ...filesUnder(path.join(root, 'src'), '.ts')];
    const missing: string[] = [];
    // t('key') or t("key") with a literal key; keys built at run time are checked by their own tests.
    const use = /\bt\(\s*['"]([a-z][\w.-]*)['"]/g;
    for (const file of files) {
      if (file.endsWith('.test.ts')) continue;
      for (const match of readFileSync(file, 'utf8').matchAll(use)) {
        const key = match[1] ?? '';
        if (!known.has(key)) missing.push(`${path.relative(root, file)}: ${key}`);
      }
    }
    expect(missing).toEqual([]);
  });

  it('fills placeholders and falls back to the key when it is unknown', () => {
    const t = createTranslations([{ en: { 'x.hello': 'Hello {name}' }, ja: { 'x.hello': 'こんにちは {name} さん' } }]);
    expect(t.ja('x.hello', { name: 'Aiko' })).toBe('こんにちは Aiko さん');
    expect(t.en('x.unknown')).toBe('x.unknown');
  });
});

describe('negotiateLanguage', () => {
  it('a remembered choice wins over the header', () => {
    expect(negotiateLanguage('ja', 'en-US,en;q=0.9')).toBe('ja');
  });
  it('picks the spoken language with the highest q', () => {
    expect(negotiateLanguage(undefined, 'fr-FR,ja;q=0.8,en;q=0.5')).toBe('ja');
    expect(negotiateLanguage(undefined, 'ja-JP')).toBe('ja');
    expect(negotiateLanguage(undefined, 'en;q=0.9,ja;q=0.3')).toBe('en');
  });
  it('falls back to English for nothing usable', () => {
    expect(negotiateLanguage(undefined, undefined)).toBe('en');
    expect(negotiateLanguage('xx', 'de,fr;q=0.5')).toBe('en');
    expect(negotiateLanguage(undefined, 'ja;q=0')).toBe('en');
    expect(negotiateLanguage(undefined, ';;;,,,' + 'a'.repeat(100000))).toBe('en');
  });
});
