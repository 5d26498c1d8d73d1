// Type-aware lint: floating promises and misused promises are the bugs that matter in async server code.
import js from '@eslint/js';
import { createNodeResolver, importX } from 'eslint-plugin-import-x';
import tseslint from 'typescript-eslint';

/**
 * The import direction of src/, lowest layer first; a file may import only from its own layer or below:
 *   base    config, errors, log, metrics, clock, backoff, i18n (the catalogs of texts in every language)
 *   infra   store, crypto, net
 *   domain  mail, tokens, oauth (with its providers), admin, notify
 *   web     the routers, given narrow service interfaces; never app.ts or services.ts
 *   wiring  app.ts, services.ts, cli/ and cli.ts (the command line may use services and domain)
 *   main.ts imported by nothing
 * Inside domain: admin (actors, audit) imports no other area; tokens may import oauth, never the reverse.
 */
const base = [
  './src/config.ts',
  './src/errors.ts',
  './src/log.ts',
  './src/metrics.ts',
  './src/clock.ts',
  './src/backoff.ts',
  './src/i18n',
];
const infra = ['./src/store', './src/crypto', './src/net'];
const domain = ['./src/mail', './src/tokens', './src/oauth', './src/admin', './src/notify', './src/submission'];
const web = ['./src/web'];
const wiring = ['./src/app.ts', './src/services.ts', './src/cli', './src/cli.ts'];
const entry = ['./src/main.ts'];

const layerZones = [
  {
    target: base,
    from: [...infra, ...domain, ...web, ...wiring, ...entry],
    message: 'config, errors, log, metrics and clock are the bottom layer: they import nothing of src/ above them.',
  },
  {
    target: infra,
    from: [...domain, ...web, ...wiring, ...entry],
    message: 'store, crypto and net are below the domain: pass what they need in instead.',
  },
  {
    target: domain,
    from: [...web, ...wiring, ...entry],
    message: 'Domain code (mail, tokens, oauth, admin) must not import the web layer, the wiring or the CLI.',
  },
  {
    target: web,
    from: [...wiring, ...entry],
    message: 'Routers get their services as parameters; they do not import app.ts, services.ts, the CLI or main.ts.',
  },
  {
    target: web,
    from: './src/crypto',
    message: 'Routers never touch the keyring or sealed values: a service does that for them.',
  },
  {
    target: web,
    from: './src/store',
    except: ['./store.ts', './sessions.ts'],
    message: 'Routers get services, never a store implementation (the capability interfaces are fine).',
  },
  {
    target: ['./src/cli', './src/cli.ts'],
    from: web,
    message: 'The CLI uses services and domain code, never the web layer.',
  },
  {
    target: ['./src/app.ts', './src/services.ts'],
    from: ['./src/cli', './src/cli.ts'],
    message: 'The services know nothing of the command line.',
  },
  { target: './src', from: entry, message: 'src/main.ts is the process entry point: nothing imports it.' },
  {
    target: './src/admin',
    from: ['./src/mail', './src/tokens', './src/oauth', './src/notify'],
    message: 'admin (actors, audit, users) is the lowest domain area: it imports no other area.',
  },
  { target: './src/oauth', from: './src/tokens', message: 'tokens may import oauth, never the reverse.' },
];

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', 'data/', 'coverage/', 'bin/', 'bench/*.mjs', 'scripts/', '.ci/'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': ['error', { checksVoidReturn: { arguments: false } }],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': 'error',
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/require-await': 'off',
      '@typescript-eslint/only-throw-error': 'error',
      'no-console': ['error', { allow: ['error', 'warn'] }],
    },
  },
  // The import direction (above) and no import cycles inside src/; type-only imports count too.
  {
    files: ['src/**/*.ts'],
    plugins: { 'import-x': importX },
    settings: {
      'import-x/resolver-next': [createNodeResolver({ extensionAlias: { '.js': ['.ts', '.js'] } })],
      // no-cycle follows imports by parsing the imported files: with the TypeScript parser, as ESLint does.
      'import-x/parsers': { '@typescript-eslint/parser': ['.ts'] },
      'import-x/extensions': ['.ts', '.js'],
    },
    rules: {
      'import-x/no-restricted-paths': ['error', { zones: layerZones }],
      'import-x/no-cycle': ['error', { ignoreExternal: true }],
    },
  },
  // Plain JS (this file, the browser scripts in public/) is outside the TypeScript project.
  { files: ['**/*.js'], ...tseslint.configs.disableTypeChecked },
  {
    files: ['public/**/*.js'],
    languageOptions: {
      sourceType: 'script',
      globals: { document: 'readonly', window: 'readonly', navigator: 'readonly' },
    },
  },
  {
    files: ['test/**/*.ts', 'src/**/*.test.ts', 'bench/**/*.ts'],
    rules: {
      '@typescript-eslint/no-non-null-assertion': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      'no-console': 'off',
    },
  },
);
