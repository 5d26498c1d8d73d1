import type { Socket } from 'node:net';
import { dataBlock } from './data-block.js';
import { smtpError, timeoutError, type WireError } from './errors.js';
import { ReplyReader, ReplyTooLarge, type Reply } from './replies.js';

/**
 * One SMTP session on an open socket: replies are matched to the commands in the order they were sent
 * (RFC 2920), so a whole envelope goes out in one write and its replies are read as they come. The session is
 * set up by session.ts; this module runs transactions on it. Failures carry nodemailer's codes (errors.ts).
 */

export interface WireEnvelope {
  from: string;
  to: string[];
  use8BitMime?: boolean;
}

export interface TransactionResult {
  accepted: string[];
  rejected: string[];
  rejectedErrors: WireError[];
  response: string;
}

/** One message to send on a connection, and where its outcome goes. */
export interface PendingSend {
  envelope: WireEnvelope;
  raw: Buffer;
  resolve(result: TransactionResult): void;
  /** `bodyStarted`: (part of) the message was written, so it must not be tried again elsewhere. */
  reject(err: WireError, bodyStarted: boolean): void;
}

type Handler = (reply: Reply) => void;

/** Time the server gets to close its side after QUIT before the socket is destroyed. */
const QUIT_GRACE_MS = 5_000;

const NON_ASCII = /[\x80-\uFFFF]/;
const INVALID_ADDRESS = /[\r\n<>]/;

export class WireConnection {
  #socket: Socket;
  readonly #reader = new ReplyReader();
  readonly #handlers: Handler[] = [];
  /** Fails the setup step waiting for the server. */
  #abort: ((err: WireError) => void) | null = null;
  /** Fail the transactions in progress (one, or two when the next envelope went out with a message's data). */
  readonly #transactions = new Set<(err: WireError) => void>();
  #closed = false;
  /** Extensions from the last EHLO (upper case keywords). */
  extensions = new Set<string>();
  /** Transactions started on this connection. */
  started = 0;
  /**
   * Asked when a message's data is about to be written: a waiting message whose envelope can go in the same write
   * (RFC 2920 lets message content start a group of commands).
   */
  nextInLine: (() => PendingSend | undefined) | undefined;
  /** Called once when the connection is gone (closed by either side or failed). */
  onClosed: (() => void) | undefined;

  constructor(socket: Socket) {
    this.#socket = socket;
    this.#attach(socket);
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Something waits for the server. */
  get busy(): boolean {
    return this.#abort !== null || this.#transactions.size > 0 || this.#handlers.length > 0;
  }

  /** Transactions in progress. */
  get active(): number {
    return this.#transactions.size;
  }

  /** Lets go of the plain socket for a TLS handshake over it; what was read in plaintext is dropped (RFC 3207). */
  beginUpgrade(): Socket {
    const plain = this.#socket;
    this.#detach(plain);
    // The TLS socket reports the failure; a late error of the plain one must not go unheard.
    plain.on('error', () => undefined);
    this.#reader.reset();
    return plain;
  }

  /** Continues the session over the secured socket. */
  finishUpgrade(secured: Socket): void {
    this.#socket = secured;
    this.#attach(secured);
  }

  /** Waits between replies: 0 for none. While nothing is waiting, running out quietly ends an idle session. */
  setTimeout(ms: number): void {
    this.#socket.setTimeout(ms);
  }

  readonly #onData = (chunk: Buffer) => {
    let replies: Reply[];
    try {
      replies = this.#reader.push(chunk);
    } catch (err) {
      if (err instanceof ReplyTooLarge) return this.fail(smtpError(err.message, 'EPROTOCOL', false, 'CONN'));
      throw err;
    }
    for (const reply of replies) {
      if (this.#closed) return;
      const handler = this.#handlers.shift();
      const closing = reply.code === 421;
      if (handler) {
        handler(reply);
        if (closing) this.fail(smtpError('Server closed the connection', 'ECONNECTION', reply.text, 'CONN'));
      } else if (closing && !this.busy) {
        this.close();
      } else {
        this.fail(smtpError('Unexpected Response', 'EPROTOCOL', reply.text, 'CONN'));
      }
    }
  };

  readonly #onError = (err: Error) => this.fail(smtpError(err, 'ESOCKET', false, 'CONN'));

  readonly #onClose = () => {
    const leftover = this.#reader.leftover();
    const failure = /^[45]\d{2}[ -]/.test(leftover) ? leftover : false;
    if (this.busy || failure) this.fail(smtpError('Connection closed unexpectedly', 'ECONNECTION', failure, 'CONN'));
    else this.close();
  };

  readonly #onEnd = () => {
    if (!this.#socket.destroyed) this.#socket.end();
  };

  readonly #onTimeout = () => {
    if (this.busy) this.fail(timeoutError('Timeout', 'SOCKET_TIMEOUT'));
    else this.quit();
  };

  #attach(socket: Socket): void {
    socket.on('data', this.#onData);
    socket.on('error', this.#onError);
    socket.once('close', this.#onClose);
    socket.once('end', this.#onEnd);
    socket.on('timeout', this.#onTimeout);
  }

  #detach(socket: Socket): void {
    socket.removeListener('data', this.#onData);
    socket.removeListener('error', this.#onError);
    socket.removeListener('close', this.#onClose);
    socket.removeListener('end', this.#onEnd);
    socket.removeListener('timeout', this.#onTimeout);
    socket.setTimeout(0);
  }

  /** Registers the operation that a lost connection fails; null when it is over. */
  setAbort(abort: ((err: WireError) => void) | null): void {
    this.#abort = abort;
  }

  /** Sends `line` (when given) and resolves with the next reply; for setup steps, where a promise per reply is fine. */
  request(line?: string): Promise<Reply> {
    // Closed between two setup steps (a 421 behind the last reply): nothing would ever answer or fail this one.
    if (this.#closed) return Promise.reject(smtpError('Connection closed unexpectedly', 'ECONNECTION', false, 'CONN'));
    return new Promise<Reply>((resolve, reject) => {
      this.setAbort(reject);
      this.#handlers.push((reply) => {
        this.setAbort(null);
        resolve(reply);
      });
      if (line !== undefined) this.write(`${line}\r\n`);
    });
  }

  write(data: string | Buffer): void {
    if (this.#closed) return;
    this.#socket.write(data);
  }

  /** Closes the connection and fails what was waiting with `err`. */
  fail(err: WireError): void {
    const abort = this.#abort;
    const transactions = [...this.#transactions];
    this.#abort = null;
    this.#transactions.clear();
    if (!this.#closed) {
      this.#closed = true;
      this.#handlers.length = 0;
      const socket = this.#socket;
      this.#detach(socket);
      socket.on('error', () => undefined);
      socket.destroy();
      this.onClosed?.();
    }
    abort?.(err);
    for (const t of transactions) t(err);
  }

  /** Closes the connection; anything still waiting for the server fails as a lost connection. */
  close(): void {
    this.fail(smtpError('Connection closed', 'ECONNECTION', false, 'CONN'));
  }

  /** Ends the session politely: QUIT, then our side closed; the socket is destroyed if the server lingers. */
  quit(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#handlers.length = 0;
    const socket = this.#socket;
    this.#detach(socket);
    socket.on('error', () => undefined);
    socket.end('QUIT\r\n');
    const timer = setTimeout(() => socket.destroy(), QUIT_GRACE_MS);
    timer.unref();
    socket.once('close', () => clearTimeout(timer));
    this.onClosed?.();
  }

  /** RSET after a refused transaction; resolves false (and closes) when the session cannot be reused. */
  reset(): Promise<boolean> {
    return this.request('RSET').then(
      (reply) => {
        if (reply.code >= 200 && reply.code < 300) return true;
        this.close();
        return false;
      },
      () => false,
    );
  }

  /**
   * One message: MAIL FROM, every RCPT TO and DATA in one write; on the go-ahead, the message and the final dot in
   * one write (with the next waiting message's envelope behind them). Outcomes and errors as nodemailer's
   * SMTPConnection.send reports them for a pipelined envelope.
   */
  send(pending: PendingSend): void {
    const commands = this.#begin(pending);
    if (commands) this.write(commands);
  }

  /** Registers the replies a message's envelope will get; returns its commands (null when refused before any). */
  #begin(pending: PendingSend): Buffer | null {
    const { envelope, raw } = pending;
    const { from, to } = envelope;
    const refuse = (message: string) => {
      pending.reject(smtpError(message, 'EENVELOPE', false, 'API'), false);
      return null;
    };
    if (to.length === 0) return refuse('No recipients defined');
    if (INVALID_ADDRESS.test(from)) return refuse(`Invalid sender ${JSON.stringify(from)}`);
    let utf8 = NON_ASCII.test(from);
    for (const address of to) {
      if (!address || INVALID_ADDRESS.test(address)) return refuse(`Invalid recipient ${JSON.stringify(address)}`);
      if (NON_ASCII.test(address)) utf8 = true;
    }
    this.started++;
    const accepted: string[] = [];
    const rejected: string[] = [];
    const rejectedErrors: WireError[] = [];
    let mailError: WireError | undefined;
    let bodyStarted = false;
    let settled = false;
    const abort = (err: WireError) => settle(mailError ?? err);
    const settle = (err: WireError | null, result?: TransactionResult) => {
      if (settled) return;
      settled = true;
      this.#transactions.delete(abort);
      if (err) pending.reject(err, bodyStarted);
      else pending.resolve(result!);
    };
    this.#transactions.add(abort);

    let args = '';
    if (utf8 && this.extensions.has('SMTPUTF8')) args += ' SMTPUTF8';
    if (envelope.use8BitMime && this.extensions.has('8BITMIME')) args += ' BODY=8BITMIME';
    let commands = `MAIL FROM:<${from}>${args}\r\n`;
    this.#handlers.push((reply) => {
      if (reply.code < 200 || reply.code >= 300) {
        const message =
          utf8 && reply.code === 550 && NON_ASCII.test(from)
            ? 'Internationalized mailbox name not allowed'
            : 'Mail command failed';
        mailError = smtpError(message, 'EENVELOPE', reply.text, 'MAIL FROM');
      }
    });
    for (const address of to) {
      commands += `RCPT TO:<${address}>\r\n`;
      this.#handlers.push((reply) => {
        if (reply.code >= 200 && reply.code < 300) {
          accepted.push(address);
          return;
        }
        const message =
          utf8 && reply.code === 553 && NON_ASCII.test(address)
            ? 'Internationalized mailbox name not allowed'
            : 'Recipient command failed';
        const err = smtpError(message, 'EENVELOPE', reply.text, 'RCPT TO');
        err.recipient = address;
        rejected.push(address);
        rejectedErrors.push(err);
      });
    }
    commands += 'DATA\r\n';
    this.#handlers.push((reply) => {
      const goAhead = reply.code >= 300 && reply.code < 400;
      if (mailError) {
        // A server that refused the sender but takes DATA cannot be trusted with the session.
        if (goAhead) this.close();
        return settle(mailError);
      }
      if (accepted.length === 0) {
        // Report a temporary refusal when there is one: the last reply could make the message look permanently failed.
        const deferred = rejectedErrors.find((e) => e.responseCode && e.responseCode < 500);
        const last = rejectedErrors[rejectedErrors.length - 1];
        const err = smtpError(
          "Can't send mail - all recipients were rejected",
          'EENVELOPE',
          deferred?.response ?? last?.response ?? reply.text,
          'RCPT TO',
        );
        err.rejected = rejected;
        err.rejectedErrors = rejectedErrors;
        if (!goAhead) return settle(err);
        // The server took DATA without a recipient: an empty message to nobody keeps the session usable.
        this.#handlers.push(() => settle(err));
        this.write('.\r\n');
        return;
      }
      if (reply.code < 200 || reply.code >= 400)
        return settle(smtpError('Data command failed', 'EENVELOPE', reply.text, 'DATA'));
      this.#handlers.push((end) => {
        if (end.code < 200 || end.code >= 300) return settle(smtpError('Message failed', 'EMESSAGE', end.text, 'DATA'));
        settle(null, { accepted, rejected, rejectedErrors, response: end.text });
      });
      bodyStarted = true;
      const data = dataBlock(raw);
      const next = this.nextInLine?.();
      const nextCommands = next ? this.#begin(next) : null;
      this.write(nextCommands ? Buffer.concat([data, nextCommands]) : data);
    });
    return Buffer.from(commands, 'utf8');
  }
}
