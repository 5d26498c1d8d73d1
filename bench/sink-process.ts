import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** The SMTP sink (bench/sink.ts) in its own process, as the bench sees it: its port, its count and its CPU. */
export interface Sink {
  port: number;
  /** Messages the sink reported, plus the requests of the HTTP-ceiling phase (which sends no mail). */
  readonly received: number;
  /** CPU time (ms) the sink process has used, as of its last report. */
  readonly cpuMs: number;
  /** Resolves once `received` reaches `target`. */
  receivedReaches(target: number): Promise<void>;
  /** Counts `n` requests of a phase that sends no mail as messages received. */
  countAsReceived(n: number): void;
  /** Lets the sink process exit. */
  disconnect(): void;
}

/** Starts the sink process and waits for its port. */
export async function startSink(): Promise<Sink> {
  let received = 0;
  let waiter: { target: number; resolve: () => void } | null = null;
  const sinkProcess = spawn(
    process.execPath,
    ['--import', 'tsx', fileURLToPath(new URL('./sink.ts', import.meta.url))],
    {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    },
  );
  let sinkCount = 0;
  let sinkCpuMs = 0;
  let offset = 0;
  const port = await new Promise<number>((resolve) => {
    sinkProcess.on('message', (m: { port?: number; count?: number; cpuMs?: number }) => {
      if (m.port) resolve(m.port);
      if (m.cpuMs !== undefined) sinkCpuMs = m.cpuMs;
      if (m.count !== undefined) {
        sinkCount = m.count;
        received = sinkCount + offset;
        if (waiter && received >= waiter.target) {
          waiter.resolve();
          waiter = null;
        }
      }
    });
  });
  return {
    port,
    get received() {
      return received;
    },
    get cpuMs() {
      return sinkCpuMs;
    },
    receivedReaches(target) {
      if (received >= target) return Promise.resolve();
      return new Promise((resolve) => (waiter = { target, resolve }));
    },
    countAsReceived(n) {
      offset += n;
      received = sinkCount + offset;
    },
    disconnect() {
      sinkProcess.disconnect();
    },
  };
}
