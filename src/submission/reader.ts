import type { Readable } from 'node:stream';

/**
 * Reads a DATA stream once, in one pass: the header block is split off (and bounded), the body is kept as the
 * chunks that arrived (never copied until the message is assembled once for the store), and every line is checked
 * on the way: no NUL, no bare LF (CR LF only, RFC 5321 §2.3.8: a bare LF is how SMTP smuggling starts), no line over
 * 998 octets (RFC 5322 §2.1.1). After the first problem the rest is drained, not kept.
 */

export const MAX_HEADER_BYTES = 256 * 1024;
export const MAX_LINE_OCTETS = 998;

export type ReadOutcome =
  | { ok: true; header: string; body: Buffer[]; bodyBytes: number }
  | { ok: false; reason: 'too_big' | 'format'; message: string }
  | { ok: false; reason: 'aborted'; message: string };

export function readMessage(stream: Readable & { sizeExceeded?: boolean }): Promise<ReadOutcome> {
  return new Promise((resolve) => {
    const headerParts: Buffer[] = [];
    let headerBytes = 0;
    const body: Buffer[] = [];
    let bodyBytes = 0;
    let inHeader = true;
    /** Octets of the current line so far, its CR excluded. */
    let lineLength = 0;
    let previous = -1;
    let problem: string | null = null;
    let settled = false;

    const fail = (message: string) => {
      problem ??= message;
      headerParts.length = 0;
      body.length = 0;
    };

    function scan(chunk: Buffer): void {
      if (chunk.indexOf(0) >= 0) return fail('the message contains a NUL octet');
      let start = 0;
      let lf = chunk.indexOf(10);
      while (lf >= 0) {
        const before = lf > 0 ? chunk[lf - 1] : previous;
        if (before !== 13) return fail('the message contains a bare LF; lines must end with CR LF');
        const length = lineLength + (lf - start) - 1;
        if (length > MAX_LINE_OCTETS) return fail(`a line is longer than ${MAX_LINE_OCTETS} octets`);
        if (inHeader && length === 0) {
          // The empty line: what came before is the header block, what follows is the body.
          inHeader = false;
          const rest = chunk.subarray(lf + 1);
          const head = chunk.subarray(0, lf + 1);
          headerParts.push(head);
          headerBytes += head.length;
          if (rest.length) {
            body.push(rest);
            bodyBytes += rest.length;
          }
          lineLength = 0;
          previous = 10;
          // The body's lines are checked from here on, the chunk's remainder included.
          scanBody(chunk, lf + 1);
          return;
        }
        lineLength = 0;
        start = lf + 1;
        lf = chunk.indexOf(10, start);
      }
      lineLength += chunk.length - start;
      if (lineLength > MAX_LINE_OCTETS + 1) return fail(`a line is longer than ${MAX_LINE_OCTETS} octets`);
      previous = chunk[chunk.length - 1]!;
      if (inHeader) {
        headerParts.push(chunk);
        headerBytes += chunk.length;
      } else {
        body.push(chunk);
        bodyBytes += chunk.length;
      }
    }

    /** Line checks of a body chunk from `from` (the chunk is already kept). */
    function scanBody(chunk: Buffer, from: number): void {
      let start = from;
      let lf = chunk.indexOf(10, start);
      while (lf >= 0) {
        const before = lf > 0 ? chunk[lf - 1] : previous;
        if (before !== 13) return fail('the message contains a bare LF; lines must end with CR LF');
        if (lineLength + (lf - start) - 1 > MAX_LINE_OCTETS)
          return fail(`a line is longer than ${MAX_LINE_OCTETS} octets`);
        lineLength = 0;
        start = lf + 1;
        lf = chunk.indexOf(10, start);
      }
      lineLength += chunk.length - start;
      if (lineLength > MAX_LINE_OCTETS + 1) return fail(`a line is longer than ${MAX_LINE_OCTETS} octets`);
      if (chunk.length > 0) previous = chunk[chunk.length - 1]!;
    }

    stream.on('data', (chunk: Buffer) => {
      if (problem || stream.sizeExceeded) return;
      if (inHeader) {
        scan(chunk);
        if (inHeader && headerBytes > MAX_HEADER_BYTES)
          fail(`the header block is larger than ${MAX_HEADER_BYTES} octets`);
        return;
      }
      if (chunk.indexOf(0) >= 0) return fail('the message contains a NUL octet');
      body.push(chunk);
      bodyBytes += chunk.length;
      scanBody(chunk, 0);
    });
    const settle = (outcome: ReadOutcome) => {
      if (settled) return;
      settled = true;
      resolve(outcome);
    };
    stream.once('end', () => {
      if (stream.sizeExceeded) return settle({ ok: false, reason: 'too_big', message: 'the message is too big' });
      if (problem) return settle({ ok: false, reason: 'format', message: problem });
      // A message without a body has no empty line: all of it is the header block.
      const header = Buffer.concat(headerParts).toString('latin1');
      const block = header.endsWith('\r\n\r\n') ? header.slice(0, -4) : header.replace(/\r\n$/, '');
      settle({ ok: true, header: block, body, bodyBytes });
    });
    stream.once('error', (err: Error) => settle({ ok: false, reason: 'aborted', message: err.message }));
    stream.once('close', () => settle({ ok: false, reason: 'aborted', message: 'the client went away' }));
  });
}
