/**
 * The benchmark's SMTP sink in its own process (an SMTP server is another machine in real life, so its CPU is
 * not charged to mailgate): accepts everything, prints its port, and reports the running count and its own CPU
 * time over IPC.
 */
import type net from 'node:net';
import { SMTPServer } from 'smtp-server';

let count = 0;
let reported = 0;
const sink = new SMTPServer({
  disabledCommands: ['AUTH', 'STARTTLS'],
  logger: false,
  disableReverseLookup: true,
  onData(stream, _session, cb) {
    stream.on('data', () => undefined);
    stream.on('end', () => {
      count++;
      cb(null, 'ok');
    });
  },
});
sink.on('error', () => undefined);
await new Promise<void>((resolve) => sink.listen(0, '127.0.0.1', resolve));
const port = ((sink as unknown as { server: net.Server }).server.address() as net.AddressInfo).port;
process.send!({ port });
const cpuMs = () => {
  const c = process.cpuUsage();
  return (c.user + c.system) / 1000;
};
setInterval(() => {
  if (count !== reported) {
    reported = count;
    process.send!({ count, cpuMs: cpuMs() });
  }
}, 5);
process.on('disconnect', () => process.exit(0));
