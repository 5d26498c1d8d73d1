import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * mailgate runs compiled (tsconfig.bench.json: src plus bench/mailgate-process.ts), as `npm start` runs it. Under
 * tsx its process held about 40 MB more (the loader's thread) and spent CPU in the loader's hooks.
 * MAILGATE_BENCH_TSX=1 runs the sources under tsx instead.
 *
 * Compiles this tree for the bench unless under tsx, and answers the node arguments that start one of its mailgate
 * instances (bench/mailgate-process.ts).
 */
export function prepareMailgateEntry(): string[] {
  const root = fileURLToPath(new URL('..', import.meta.url));
  const useTsx = process.env.MAILGATE_BENCH_TSX === '1';
  if (!useTsx) {
    console.log('compiling mailgate for the bench (tsc -p tsconfig.bench.json)…');
    const tsc = spawnSync(
      process.execPath,
      [path.join(root, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.bench.json'],
      {
        cwd: root,
        stdio: 'inherit',
      },
    );
    if (tsc.status !== 0) throw new Error('tsc -p tsconfig.bench.json failed');
  }
  return useTsx
    ? ['--import', 'tsx', fileURLToPath(new URL('./mailgate-process.ts', import.meta.url))]
    : [path.join(root, 'dist/bench/bench/mailgate-process.js')];
}
