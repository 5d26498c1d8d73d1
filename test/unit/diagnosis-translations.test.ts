import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { createTranslations, LANGUAGES } from '../../src/i18n/i18n.js';
import { catalogs } from '../../src/i18n/messages/index.js';
import { DIAGNOSIS_CODES } from '../../src/mail/diagnosis-codes.js';
import { OAUTH_DIAGNOSIS_CODES } from '../../src/oauth/diagnose.js';
import { AADSTS_HINTS } from '../../src/oauth/providers/microsoft.js';
import { AUTHORIZATION_REFUSALS } from '../../src/tokens/authorize.js';
import { diagnosisHint, oauthHint } from '../../src/web/hints.js';

/**
 * Every code a hint is translated by has a text in every language: mail diagnoses (the table the diagnosers
 * are typed against, and every literal code in their source), OAuth diagnoses (the generic table and
 * Microsoft's AADSTS table) and the reasons an authorization callback is refused.
 */

const keysOf = (lang: (typeof LANGUAGES)[number]) =>
  new Map(catalogs.flatMap((c) => Object.entries(c[lang] as Record<string, string>)));

function missing(keys: readonly string[]): string[] {
  return LANGUAGES.flatMap((lang) => {
    const texts = keysOf(lang);
    return keys.filter((k) => !texts.get(k)?.trim()).map((k) => `${lang}: ${k}`);
  });
}

const MAIL_SOURCES = ['src/mail/diagnose.ts', 'src/mail/diagnose-api.ts', 'src/mail/queue/delivery-outcome.ts'];

describe('translations of diagnoses and OAuth failures', () => {
  it('has a text for every mail diagnosis code in every language', () => {
    expect(DIAGNOSIS_CODES.length).toBeGreaterThan(30);
    expect(missing(DIAGNOSIS_CODES.map((c) => `diagnosis.${c}`))).toEqual([]);
  });

  it('lists every code the diagnosers return in the table (so none escapes the check above)', async () => {
    const found = new Set<string>();
    for (const file of MAIL_SOURCES) {
      const source = await readFile(file, 'utf8');
      for (const m of source.matchAll(/(?:result\(\s*|code: )'([a-z_]+)'/g)) found.add(m[1]!);
    }
    expect(found.size).toBeGreaterThan(30);
    expect([...found].filter((c) => !(DIAGNOSIS_CODES as readonly string[]).includes(c))).toEqual([]);
  });

  it('keeps no text for a diagnosis code that no longer exists', () => {
    const stale = [...keysOf('en').keys()]
      .filter((k) => k.startsWith('diagnosis.'))
      .filter((k) => !(DIAGNOSIS_CODES as readonly string[]).includes(k.slice('diagnosis.'.length)));
    expect(stale).toEqual([]);
  });

  it('has a text for every OAuth diagnosis code, every AADSTS code and every refused callback', () => {
    expect(OAUTH_DIAGNOSIS_CODES).toContain('invalid_grant');
    expect(Object.keys(AADSTS_HINTS).length).toBeGreaterThan(5);
    const keys = [
      ...OAUTH_DIAGNOSIS_CODES.map((c) => `oauthDiagnosis.${c}`),
      ...Object.keys(AADSTS_HINTS).map((n) => `oauthDiagnosis.AADSTS${n}`),
      'oauthDiagnosis.other',
      ...AUTHORIZATION_REFUSALS.map((r) => `oauthFailure.${r}`),
    ];
    expect(missing(keys)).toEqual([]);
  });

  it('renders a stored English hint in Japanese by its code, and keeps it in English', () => {
    const t = createTranslations(catalogs);
    const stored = 'Microsoft Graph asked to slow down for this mailbox (429 ApplicationThrottled).';
    expect(diagnosisHint(t.en, 'en', 'api_throttled', stored)).toBe(stored);
    const ja = diagnosisHint(t.ja, 'ja', 'api_throttled', stored);
    expect(ja).toMatch(/プロバイダー/);
    expect(diagnosisHint(t.ja, 'ja', 'connection_refused', 'x', 'mail.example.com:587')).toContain(
      'mail.example.com:587',
    );
    // A code nobody translated shows the stored text rather than a key.
    expect(diagnosisHint(t.ja, 'ja', 'made_up', stored)).toBe(stored);
    expect(oauthHint(t.ja, 'ja', 'AADSTS50173', 'revoked')).toContain('AADSTS50173');
    expect(oauthHint(t.ja, 'ja', 'weird_provider_code', 'The provider said: no')).toBe(t.ja('oauthDiagnosis.other'));
  });
});
