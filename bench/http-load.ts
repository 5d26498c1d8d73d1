import { spawn } from 'node:child_process';
import http from 'node:http';
import type net from 'node:net';
import { fileURLToPath } from 'node:url';
import type { Bench } from './context.js';
import type { PhaseResult } from './measure.js';

export interface Client {
  go(): Promise<{ latencies: number[]; cpuMs: number }>;
}

/**
 * Starts the load generator (bench/api-client.ts) and waits until it is ready; `go()` starts it and resolves with
 * its figures.
 */
export async function startClient(bench: Bench, url: string, key: string): Promise<Client> {
  const client = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      fileURLToPath(new URL('./api-client.ts', import.meta.url)),
      url,
      key,
      String(bench.options.n),
      String(bench.options.clients),
    ],
    {
      stdio: ['pipe', 'pipe', 'inherit'],
    },
  );
  let out = '';
  client.stdout.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => client.once('exit', resolve));
  while (!out.includes('ready\n')) {
    if (client.exitCode !== null) throw new Error('the API client did not start');
    await new Promise((r) => setTimeout(r, 20));
  }
  return {
    async go() {
      client.stdin.write('go\n');
      const code = await exited;
      if (code !== 0) throw new Error(`the API client failed (${code})`);
      const line = out.split('\n').find((l) => l.startsWith('{'))!;
      return JSON.parse(line) as { latencies: number[]; cpuMs: number };
    },
  };
}

/** Phases (m) and (c): the client's N requests. */
export async function viaHttp(client: Client, note: string): Promise<PhaseResult> {
  // The clients run in their own process, as real apps do, so they do not take the server's event loop.
  const { latencies, cpuMs } = await client.go();
  return { latencies, clientCpuMs: cpuMs, note };
}

/** Phase (h)'s server, answering 202 and doing nothing: the machine's loopback HTTP limit. */
export async function startTrivialServer(): Promise<{ url: string; close(): Promise<void> }> {
  const trivial = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      res.writeHead(202, { 'content-type': 'application/json' });
      res.end('{"id":"x","status":"queued"}');
    });
  });
  await new Promise<void>((r) => trivial.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(trivial.address() as net.AddressInfo).port}`,
    async close() {
      trivial.closeAllConnections();
      await new Promise<void>((r) => trivial.close(() => r()));
    },
  };
}

/** Phase (h): the same client against the trivial server. */
export async function httpCeiling(bench: Bench, client: Client): Promise<PhaseResult> {
  const r = await viaHttp(client, 'no mail sent');
  // Nothing reaches the sink here: count the requests as the messages of this phase.
  bench.sink.countAsReceived(bench.options.n);
  return r;
}
