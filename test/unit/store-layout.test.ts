import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

/**
 * The store's shape: small capability modules, web-layer libraries kept out of the interface, one ioredis
 * importer, and no module deciding by which backend it runs on.
 */

const root = path.resolve(import.meta.dirname, '../..');
const read = (file: string) => readFileSync(path.join(root, file), 'utf8');

function sourceFiles(dir: string): string[] {
  return readdirSync(path.join(root, dir), { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith('.ts') && !e.name.endsWith('.test.ts'))
    .map((e) => path.relative(root, path.join(e.parentPath, e.name)));
}

/** Module specifiers of import and export-from statements. */
function imports(source: string): string[] {
  return [...source.matchAll(/^\s*(?:import|export)\b[^'"]*?from\s+'([^']+)'/gm)].map((m) => m[1]!);
}

describe('store layout', () => {
  const storeFiles = sourceFiles('src/store');

  it('finds the store modules', () => {
    expect(storeFiles).toEqual(
      expect.arrayContaining([
        'src/store/store.ts',
        'src/store/file-store.ts',
        'src/store/redis-store.ts',
        'src/store/sessions.ts',
      ]),
    );
  });

  it('keeps express-session and rate-limiter-flexible out of the store interface', () => {
    expect(imports(read('src/store/store.ts'))).toEqual([]);
  });

  it('keeps every store module under 400 lines', () => {
    const long = storeFiles
      .map((file) => [file, read(file).split('\n').length] as const)
      .filter(([, lines]) => lines >= 400);
    expect(long).toEqual([]);
  });

  it('has one ioredis importer', () => {
    const importers = sourceFiles('src').filter((file) => imports(read(file)).includes('ioredis'));
    // The connection module owns the library (one Redis or a cluster); the store and the copy tool get clients from it.
    expect(importers).toEqual(['src/store/redis-connection.ts']);
  });

  it('leaves no decision to the name of the backend: modules ask for its traits', () => {
    const branching = sourceFiles('src').filter((file) =>
      /\bstore\.kind\s*[!=]==|===\s*[\w.]*store\.kind\b/.test(read(file)),
    );
    expect(branching).toEqual([]);
  });
});
