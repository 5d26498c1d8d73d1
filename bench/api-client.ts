/**
 * Load generator for bench/run.ts, in its own process like a real app: prints "ready", waits for a line on
 * stdin, then POSTs N tiny messages with C concurrent keep-alive clients and prints the per-request
 * latencies (ms) as one JSON line.
 */
import { once } from 'node:events';

const [url, key, nText, clientsText] = process.argv.slice(2);
const n = Number(nText);
const clients = Number(clientsText);
process.stdout.write('ready\n');
process.stdin.resume();
await once(process.stdin, 'data');
const latencies: number[] = [];
let next = 0;
const started = performance.now();
await Promise.all(
  Array.from({ length: clients }, async () => {
    for (let i = next++; i < n; i = next++) {
      const t = performance.now();
      const res = await fetch(`${url}/api/v1/messages`, {
        method: 'POST',
        headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
        body: JSON.stringify({ to: `rcpt${i}@example.net`, subject: `bench ${i}`, text: `message ${i}` }),
      });
      if (res.status !== 202) throw new Error(`POST answered ${res.status}: ${await res.text()}`);
      await res.arrayBuffer();
      latencies.push(performance.now() - t);
    }
  }),
);
process.stdout.write(`${JSON.stringify({ latencies, ms: performance.now() - started })}\n`);
process.exit(0);
