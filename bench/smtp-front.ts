import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/**
 * The submission front's phase of `npm run bench`: the same SMTP client (bench/smtp-client.ts, its own process)
 * sends N messages straight to the sink, then to mailgate's submission front (STARTTLS, AUTH with an API key,
 * durable queue, workers delivering to the same sink). mailgate receives like the sink and sends like the client,
 * so on two busy cores about half the direct rate is the ceiling; the goal is 0.4.
 */

export interface SmtpClient {
  go(): Promise<{ cpuMs: number; elapsedMs: number }>;
}

/**
 * Starts the client process and waits until it is ready; `go()` starts it and resolves with its CPU time and the
 * time from the start to its last 250.
 */
export async function startSmtpClient(options: {
  port: number;
  n: number;
  connections: number;
  password?: string;
}): Promise<SmtpClient> {
  const args = [
    '--import',
    'tsx',
    fileURLToPath(new URL('./smtp-client.ts', import.meta.url)),
    '127.0.0.1',
    String(options.port),
    String(options.n),
    String(options.connections),
    ...(options.password ? [options.password] : []),
  ];
  const client = spawn(process.execPath, args, { stdio: ['pipe', 'pipe', 'inherit'] });
  let out = '';
  client.stdout.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => client.once('exit', resolve));
  while (!out.includes('ready\n')) {
    if (client.exitCode !== null) throw new Error('the SMTP client did not start');
    await new Promise((r) => setTimeout(r, 20));
  }
  return {
    async go() {
      client.stdin.write('go\n');
      const code = await exited;
      if (code !== 0) throw new Error(`the SMTP client failed (${code})`);
      return JSON.parse(out.split('\n').find((l) => l.startsWith('{'))!) as { cpuMs: number; elapsedMs: number };
    },
  };
}

/** Per-message CPU of every process of a phase, as one line. */
export function cpuLine(parts: Record<string, number>): string {
  return Object.entries(parts)
    .filter(([, ms]) => ms > 0)
    .map(([name, ms]) => `${name} ${ms.toFixed(2)}`)
    .join(', ');
}
