/**
 * Splits what an SMTP server sends into complete replies. A multiline reply ("250-…" lines, then "250 …") is
 * one reply, its lines joined by "\n", as nodemailer reports it; the text is decoded as UTF-8 when it is
 * valid UTF-8 and kept byte for byte otherwise.
 */

/** Largest reply (or unterminated line) kept while it is still arriving: it only stops a peer that never ends one. */
const MAX_REPLY_BYTES = 1024 * 1024;

export interface Reply {
  code: number;
  /** Every line of the reply, codes included, joined by "\n". */
  text: string;
}

export class ReplyTooLarge extends Error {}

function decode(binary: string): string {
  if (!/[\x80-\xff]/.test(binary)) return binary;
  const utf8 = Buffer.from(binary, 'latin1').toString('utf8');
  return utf8.includes('\uFFFD') ? binary : utf8;
}

export class ReplyReader {
  #remainder = '';
  #partial = '';

  /** The complete replies in `chunk` (in order); throws ReplyTooLarge for a peer that never ends one. */
  push(chunk: Buffer): Reply[] {
    const data = chunk.toString('latin1');
    if (!data.includes('\n')) {
      this.#remainder += data;
      if (this.#remainder.length > MAX_REPLY_BYTES)
        throw new ReplyTooLarge('Server response exceeds maximum allowed size');
      return [];
    }
    const lines = (this.#remainder + data).split(/\r?\n/);
    this.#remainder = lines.pop() ?? '';
    const replies: Reply[] = [];
    for (const line of lines) {
      if (line.trim() === '') continue;
      const joined = this.#partial ? `${this.#partial}\n${line}` : line;
      if (/^\d+-/.test(line)) {
        this.#partial = joined;
        if (joined.length > MAX_REPLY_BYTES) throw new ReplyTooLarge('Server response exceeds maximum allowed size');
        continue;
      }
      this.#partial = '';
      const text = decode(joined);
      replies.push({ code: Number(/^\d+/.exec(line)?.[0] ?? 0), text });
    }
    if (this.#remainder.length > MAX_REPLY_BYTES)
      throw new ReplyTooLarge('Server response exceeds maximum allowed size');
    return replies;
  }

  /** What arrived without a line end (reported when the connection closes), trimmed. */
  leftover(): string {
    return decode((this.#partial ? `${this.#partial}\n${this.#remainder}` : this.#remainder).trim());
  }

  /** Forgets everything received so far (RFC 3207: nothing read before STARTTLS is trusted after it). */
  reset(): void {
    this.#remainder = '';
    this.#partial = '';
  }
}
