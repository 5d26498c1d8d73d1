import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

/** Every variable of the config schema is documented in .env.example and in the README's table. */

const root = new URL('../../', import.meta.url);
const read = (file: string) => readFileSync(new URL(file, root), 'utf8');

describe('configuration docs', () => {
  const variables = [...read('src/config.ts').matchAll(/^ {2}([A-Z][A-Z0-9_]+): /gm)].map((m) => m[1]!);

  it('finds the schema variables', () => {
    expect(variables).toContain('MAILGATE_SESSION_SECRETS');
    expect(variables.length).toBeGreaterThan(20);
  });

  it('.env.example and the README list each one', () => {
    const example = read('.env.example');
    const readme = read('README.md');
    for (const name of variables) {
      expect(example, `.env.example lacks ${name}`).toMatch(new RegExp(`^(# )?${name}=`, 'm'));
      expect(readme, `README lacks ${name}`).toContain(`| \`${name}\``);
    }
  });
});
