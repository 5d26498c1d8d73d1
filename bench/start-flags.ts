import { readFileSync } from 'node:fs';

/**
 * The Node flags of `npm start` (package.json: `node <flags> dist/main.js`), so an instance a bench starts runs with
 * the memory settings mailgate runs with. The Dockerfile's CMD repeats them.
 */
export function startNodeFlags(): string[] {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
    scripts: { start: string };
  };
  const words = pkg.scripts.start.split(/\s+/);
  if (words[0] !== 'node' || words.at(-1) !== 'dist/main.js')
    throw new Error(`package.json's start script is not "node <flags> dist/main.js": ${pkg.scripts.start}`);
  return words.slice(1, -1);
}
