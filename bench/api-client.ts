/**
 * Load generator for bench/run.ts, in its own process like a real app: prints "ready", waits for a line on
 * stdin, then POSTs N tiny messages with C concurrent keep-alive clients and prints the per-request
 * latencies (ms) and its own CPU time from "go" to the last answer as one JSON line.
 *
 * Uses node:http with a keep-alive agent (one socket per client) rather than fetch: on a 2-core machine the
 * client shares the CPU with the server, and fetch (undici's WHATWG layer: streams, Headers, AbortSignal)
 * costs several times the CPU per request, which would be charged to mailgate's figures.
 */
import http from 'node:http';
import { once } from 'node:events';

const [url, key, nText, clientsText] = process.argv.slice(2);
const n = Number(nText);
const clients = Number(clientsText);
// Several instances (comma-separated): each client keeps to one, round robin.
const targets = url!.split(',').map((u) => new URL(`${u}/api/v1/messages`));
const agent = new http.Agent({ keepAlive: true, maxSockets: clients });

function post(target: URL, body: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        agent,
        host: target.hostname,
        port: target.port,
        path: target.pathname,
        method: 'POST',
        headers: {
          authorization: `Bearer ${key}`,
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(body),
        },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (text += d));
        res.on('end', () =>
          res.statusCode === 202 ? resolve() : reject(new Error(`POST answered ${res.statusCode}: ${text}`)),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

process.stdout.write('ready\n');
process.stdin.resume();
await once(process.stdin, 'data');
const latencies: number[] = [];
let next = 0;
const started = performance.now();
const cpuAtStart = process.cpuUsage();
await Promise.all(
  Array.from({ length: clients }, async (_, c) => {
    const target = targets[c % targets.length]!;
    for (let i = next++; i < n; i = next++) {
      const t = performance.now();
      await post(target, JSON.stringify({ to: `rcpt${i}@example.net`, subject: `bench ${i}`, text: `message ${i}` }));
      latencies.push(performance.now() - t);
    }
  }),
);
const cpu = process.cpuUsage(cpuAtStart);
process.stdout.write(
  `${JSON.stringify({ latencies, ms: performance.now() - started, cpuMs: (cpu.user + cpu.system) / 1000 })}\n`,
);
process.exit(0);
