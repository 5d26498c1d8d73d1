#!/usr/bin/env node
// `npm start` runs this first: it compiles TypeScript only when dist/ is missing or older than a source file
// (src/, tsconfig*.json, package.json), so a restart takes no compile and a fresh clone or an edit still gets one.
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync, utimesSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const stamp = path.join(root, 'dist', 'main.js');

function newest(dir) {
  let latest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) latest = Math.max(latest, newest(full));
    else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.test.ts'))
      latest = Math.max(latest, statSync(full).mtimeMs);
  }
  return latest;
}

function mtime(file) {
  try {
    return statSync(file).mtimeMs;
  } catch {
    return 0;
  }
}

const sources = Math.max(
  newest(path.join(root, 'src')),
  ...['tsconfig.json', 'tsconfig.build.json', 'package.json'].map((f) => mtime(path.join(root, f))),
);
const built = mtime(stamp);
if (built >= sources) process.exit(0);

process.stderr.write(built ? 'mailgate: sources changed since the last build; compiling…\n' : 'mailgate: compiling…\n');
const tsc = path.join(root, 'node_modules', 'typescript', 'bin', 'tsc');
const result = spawnSync(process.execPath, [tsc, '-p', path.join(root, 'tsconfig.build.json')], { stdio: 'inherit' });
if (result.status !== 0) process.exit(result.status ?? 1);
// tsc leaves an unchanged output file alone; the stamp must say "built now" either way.
const now = new Date();
utimesSync(stamp, now, now);
