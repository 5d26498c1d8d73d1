import { spawn, type ChildProcess } from 'node:child_process';
import { waitForPort } from './net.js';

/**
 * Starts a private redis-server on 127.0.0.1:port that keeps nothing on disk unless `args` says otherwise (they
 * come last, so `['--appendonly', 'yes']` wins); resolves once it listens.
 */
export async function spawnRedisServer(
  binary: string,
  port: number,
  dir?: string,
  args: string[] = [],
): Promise<ChildProcess> {
  const all = [
    '--port',
    String(port),
    '--bind',
    '127.0.0.1',
    '--save',
    '',
    '--appendonly',
    'no',
    ...(dir ? ['--dir', dir] : []),
    ...args,
  ];
  const child = spawn(binary, all, { stdio: 'ignore' });
  try {
    await waitForPort(port, 10_000, 'redis-server');
  } catch (err) {
    child.kill('SIGKILL');
    throw err;
  }
  return child;
}
