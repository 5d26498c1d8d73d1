import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const workerChild = fileURLToPath(new URL('./mail-worker-child.ts', import.meta.url));

/**
 * Starts a mail worker in its own process (mail-worker-child.ts, under tsx) with `env`, resolving once it reports
 * ready; `onCleanup` receives the kill the caller's cleanup must run (the kill -9 tests kill it themselves).
 */
export function startWorkerChild(
  env: Record<string, string>,
  onCleanup: (kill: () => void) => void,
): Promise<ChildProcess> {
  const proc = spawn(process.execPath, ['--import', 'tsx', workerChild], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  onCleanup(() => {
    if (proc.exitCode === null) proc.kill('SIGKILL');
  });
  return new Promise((resolve, reject) => {
    let buf = '';
    proc.stdout.on('data', (d: Buffer) => {
      buf += d.toString();
      if (buf.includes('"ready":true')) resolve(proc);
    });
    proc.once('exit', (code) => reject(new Error(`worker exited early (${code})`)));
  });
}
