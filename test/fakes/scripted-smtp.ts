import { EventEmitter, once } from 'node:events';
import net from 'node:net';

/**
 * A bare SMTP server on a socket, for the protocol edges smtp-server does not let a test script: a reply of the
 * test's choosing to any command (DATA included), a 421 or a cut at any step, no PIPELINING. It keeps every line
 * and every message exactly as the bytes arrived (dot-stuffed, before the final dot), so two clients can be
 * compared byte for byte. No TLS and no AUTH.
 */

/** A reply line (or lines joined by \r\n), or 'drop' to cut the connection instead of answering. */
export type ScriptedReply = string | undefined;

export interface ScriptedSmtpOptions {
  /** EHLO keywords after the greeting line (default PIPELINING and 8BITMIME). */
  extensions?: string[];
  /** Answers a command instead of the default; `connection` counts from 1. */
  onCommand?: (verb: string, line: string, connection: number) => ScriptedReply;
  /** Answers the end of a message instead of 250. */
  onMessage?: (data: Buffer, connection: number) => ScriptedReply;
}

export interface ScriptedSmtp {
  port: number;
  /** Every command line received, in order, as "<connection> <line>". */
  lines: string[];
  /** Every message's data as it was on the wire (dot-stuffed, without the final ".\r\n"). */
  data: Buffer[];
  readonly connections: number;
  /** Resolves when `count` connections have closed. */
  closed(count: number): Promise<void>;
  close(): Promise<void>;
}

const END = Buffer.from('\r\n.\r\n');

export async function startScriptedSmtp(options: ScriptedSmtpOptions = {}): Promise<ScriptedSmtp> {
  const lines: string[] = [];
  const data: Buffer[] = [];
  const events = new EventEmitter();
  const sockets = new Set<net.Socket>();
  let connections = 0;
  let closedCount = 0;
  const extensions = options.extensions ?? ['PIPELINING', '8BITMIME'];

  const defaultReply = (verb: string): string => {
    switch (verb) {
      case 'EHLO':
        return ['scripted', ...extensions]
          .map((e, i, all) => `250${i === all.length - 1 ? ' ' : '-'}${e}`)
          .join('\r\n');
      case 'DATA':
        return '354 go ahead';
      case 'QUIT':
        return '221 bye';
      case 'HELO':
      case 'MAIL':
      case 'RCPT':
      case 'RSET':
      case 'NOOP':
        return '250 OK';
      default:
        return '502 not implemented';
    }
  };

  const server = net.createServer((socket) => {
    const id = ++connections;
    sockets.add(socket);
    socket.setNoDelay(true);
    socket.on('error', () => undefined);
    socket.on('close', () => {
      sockets.delete(socket);
      closedCount++;
      events.emit('closed');
    });
    let buffer = Buffer.alloc(0);
    let inData = false;
    const answer = (reply: ScriptedReply, fallback: string): boolean => {
      if (reply === 'drop') {
        socket.destroy();
        return false;
      }
      socket.write(`${reply ?? fallback}\r\n`);
      return true;
    };
    socket.on('data', (chunk: Buffer) => {
      buffer = Buffer.concat([buffer, chunk]);
      for (;;) {
        if (inData) {
          // The data may be empty: then the final dot comes first.
          const end = buffer.subarray(0, 3).equals(Buffer.from('.\r\n')) ? -2 : buffer.indexOf(END);
          if (end === -1) return;
          const message = Buffer.from(buffer.subarray(0, Math.max(end, 0) + (end >= 0 ? 2 : 0)));
          buffer = buffer.subarray(end + END.length);
          inData = false;
          data.push(message);
          if (!answer(options.onMessage?.(message, id), '250 OK queued')) return;
          continue;
        }
        const eol = buffer.indexOf('\r\n');
        if (eol === -1) return;
        const line = buffer.subarray(0, eol).toString('utf8');
        buffer = buffer.subarray(eol + 2);
        lines.push(`${id} ${line}`);
        const verb = (line.split(/[\s:]/, 1)[0] ?? '').toUpperCase();
        const reply = options.onCommand?.(verb, line, id);
        const fallback = defaultReply(verb);
        if (!answer(reply, fallback)) return;
        if (verb === 'DATA' && (reply ?? fallback).startsWith('354')) inData = true;
        if (verb === 'QUIT') socket.end();
      }
    });
    socket.write('220 scripted ESMTP\r\n');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    lines,
    data,
    get connections() {
      return connections;
    },
    async closed(count) {
      while (closedCount < count) await once(events, 'closed');
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
