import { existsSync } from 'node:fs';
import path from 'node:path';

/** The full path of a program found on PATH, or null (how the suites and the bench find redis-server and chromium). */
export function onPath(binary: string): string | null {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    const candidate = path.join(dir, binary);
    if (existsSync(candidate)) return candidate;
  }
  return null;
}
