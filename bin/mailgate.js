#!/usr/bin/env node
// The mailgate CLI. Runs the compiled CLI (dist/cli.js, made by `npm run build`) when it exists;
// otherwise runs the TypeScript source through tsx, so `npx mailgate` works in a fresh checkout too.
// MAILGATE_CLI_FROM_SOURCE=1 forces the source (useful while editing, when dist/ may be stale).
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const built = new URL('../dist/cli.js', import.meta.url);
const source = new URL('../src/cli.ts', import.meta.url);
const fromSource = process.env.MAILGATE_CLI_FROM_SOURCE === '1' || !existsSync(fileURLToPath(built));

let cli;
if (fromSource) {
  if (!existsSync(fileURLToPath(source))) {
    console.error('mailgate: neither dist/cli.js nor src/cli.ts found; run `npm run build`.');
    process.exit(2);
  }
  try {
    const { register } = await import('tsx/esm/api');
    register();
  } catch {
    console.error('mailgate: dist/cli.js is missing and tsx is not installed; run `npm run build` (or `npm install`).');
    process.exit(2);
  }
  cli = await import(source.href);
} else {
  cli = await import(built.href);
}
await cli.main();
