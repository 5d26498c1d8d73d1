import { spawn, type ChildProcess } from 'node:child_process';
import { waitForPort } from './net.js';

/** Starts a private redis-server on 127.0.0.1:port that keeps nothing on disk; resolves once it listens. */
export async function spawnRedisServer(binary: string, port: number, dir?: string): Promise<ChildProcess> {
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', ...(dir ? ['--dir', dir] : [])];
  const child = spawn(binary, args, { stdio: 'ignore' });
  try {
    await waitForPort(port, 10_000, 'redis-server');
  } catch (err) {
    child.kill('SIGKILL');
    throw err;
  }
  return child;
}
