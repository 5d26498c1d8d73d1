/**
 * One mailgate instance for bench/scale.ts, in a process of its own so its start-up time and memory are its own,
 * run from the build (dist/, as `npm start` runs it; bench/scale.ts builds first): the composition of src/main.ts (config → keyring → store → services → app → listen) with an injected clock.
 * Prints JSON lines: `ready` (start-up time, RSS, port); then, on "hour" on stdin, runs one simulated hour of the
 * token scheduler and the notification checks (a step per simulated second) and prints `hour` (CPU, RSS).
 */
import http from 'node:http';
import readline from 'node:readline';
import { createRequestListener } from '../dist/app.js';
import { loadConfig } from '../dist/config.js';
import { Keyring } from '../dist/crypto/keyring.js';
import { createLogger } from '../dist/log.js';
import { createServices } from '../dist/services.js';
import { openStore } from '../dist/store/open-store.js';

const started = performance.now();
let offset = 0;
const clock = () => Date.now() + offset;
const config = loadConfig(process.env);
const log = createLogger({ level: 'warn' });
const store = await openStore(config);
const services = await createServices({
  config,
  store,
  keyring: new Keyring(config.encryptionKeys ?? []),
  log,
  clock,
  // The simulated hour drives the scheduler itself; its own poll stays out of the way.
  oauthTuning: { schedulerPollMs: 3_600_000 },
});
await services.start();
const server = http.createServer(createRequestListener(services));
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const port = server.address().port;
const memory = () => {
  const m = process.memoryUsage();
  return { rss: m.rss, heap: m.heapUsed };
};
const say = (o) => process.stdout.write(`${JSON.stringify(o)}\n`);
say({ event: 'ready', readyMs: performance.now() - started, ...memory(), port });

const lines = readline.createInterface({ input: process.stdin });
for await (const line of lines) {
  if (line.trim() === 'hour') {
    const cpu = process.cpuUsage();
    const wall = performance.now();
    let refreshed = 0;
    for (let s = 0; s < 3600; s++) {
      offset += 1000;
      refreshed += await services.tokenScheduler.runDue(clock());
    }
    const used = process.cpuUsage(cpu);
    say({
      event: 'hour',
      cpuMs: (used.user + used.system) / 1000,
      wallMs: performance.now() - wall,
      refreshed,
      ...memory(),
    });
  } else if (line.trim() === 'exit') break;
}
await new Promise((r) => server.close(r));
await services.stop();
await store.close();
process.exit(0);
