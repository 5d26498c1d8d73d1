import type { PendingSend, TransactionResult, WireConnection, WireEnvelope } from './connection.js';
import { isConnectionLoss, type WireError } from './errors.js';
import { NotHandled } from './session.js';

/**
 * Up to `maxConnections` sessions with one server, each reused for many messages; a message waits for the first
 * free one. As nodemailer's pool does: a refused message (EENVELOPE/EMESSAGE, not 421) leaves the session usable
 * after RSET; a message whose reused connection turned out to be gone before any of its bytes were taken goes
 * once more over a fresh one; anything else closes the session. When the server is one this client does not
 * handle, every waiting message (and every later one) is handed back: `send` resolves with HAND_OVER.
 */

export const HAND_OVER = Symbol('hand over to nodemailer');

interface Job {
  envelope: WireEnvelope;
  raw: Buffer;
  retried: boolean;
  resolve: (result: TransactionResult | typeof HAND_OVER) => void;
  reject: (err: unknown) => void;
}

export interface WirePoolOptions {
  open: () => Promise<WireConnection>;
  maxConnections: number;
}

export class WirePool {
  readonly #options: WirePoolOptions;
  readonly #idle: WireConnection[] = [];
  readonly #queue: Job[] = [];
  /** Sessions open or being opened. */
  #live = 0;
  #opening = 0;
  #closed = false;
  /** The server turned out to be one for nodemailer (no PIPELINING…); kept for the pool's lifetime. */
  handedOver = false;

  constructor(options: WirePoolOptions) {
    this.#options = options;
  }

  send(envelope: WireEnvelope, raw: Buffer): Promise<TransactionResult | typeof HAND_OVER> {
    if (this.handedOver) return Promise.resolve(HAND_OVER);
    return new Promise((resolve, reject) => {
      this.#queue.push({ envelope, raw, retried: false, resolve, reject });
      this.#pump();
    });
  }

  /** Idle sessions end with QUIT now, busy ones once no message waits for them. */
  close(): void {
    this.#closed = true;
    for (const conn of this.#idle.splice(0)) conn.quit();
  }

  #pump(): void {
    while (this.#queue.length > 0 && this.#idle.length > 0) this.#run(this.#idle.pop()!, this.#queue.shift()!);
    while (this.#queue.length > this.#opening && this.#live < this.#options.maxConnections) this.#open();
  }

  #open(): void {
    this.#live++;
    this.#opening++;
    this.#options.open().then(
      (conn) => {
        this.#opening--;
        conn.onClosed = () => {
          this.#live--;
          const at = this.#idle.indexOf(conn);
          if (at >= 0) this.#idle.splice(at, 1);
          this.#pump();
        };
        conn.nextInLine = () => {
          const job = this.#queue.shift();
          return job && this.#pending(conn, job);
        };
        this.#release(conn);
      },
      (err: unknown) => {
        this.#opening--;
        this.#live--;
        if (err instanceof NotHandled) {
          this.handedOver = true;
          for (const job of this.#queue.splice(0)) job.resolve(HAND_OVER);
          return;
        }
        // The message this session was opened for fails with it; the next one gets its own attempt.
        this.#queue.shift()?.reject(err);
        this.#pump();
      },
    );
  }

  /** A free session takes the next waiting message, or waits itself. */
  #release(conn: WireConnection): void {
    if (conn.closed || conn.active > 0) return;
    const job = this.#queue.shift();
    if (job) this.#run(conn, job);
    else if (this.#closed) conn.quit();
    else this.#idle.push(conn);
  }

  #run(conn: WireConnection, job: Job): void {
    conn.send(this.#pending(conn, job));
  }

  #pending(conn: WireConnection, job: Job): PendingSend {
    const reused = conn.started > 0;
    return {
      envelope: job.envelope,
      raw: job.raw,
      resolve: (result) => {
        job.resolve(result);
        this.#release(conn);
      },
      reject: (err: WireError, bodyStarted) => {
        if (reused && !bodyStarted && !job.retried && isConnectionLoss(err)) {
          // The server had closed the session while it sat idle: nothing of this message was delivered.
          conn.close();
          job.retried = true;
          this.#queue.unshift(job);
          this.#pump();
          return;
        }
        const refused = (err.code === 'EENVELOPE' || err.code === 'EMESSAGE') && err.responseCode !== 421;
        if (refused && !conn.closed && conn.active === 0) {
          // Reset before the caller hears of it, so its next message finds this session free again.
          void conn.reset().then((ok) => {
            if (ok) this.#release(conn);
            job.reject(err);
          });
          return;
        }
        // A refused message with the next one already under way: its transaction is over, nothing to reset.
        if (!refused) conn.close();
        job.reject(err);
      },
    };
  }
}
