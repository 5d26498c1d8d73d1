import { Transform, type TransformCallback } from 'node:stream';

/**
 * Joins the many small chunks nodemailer's MIME builder emits (headers, boundaries, each part: eight for a tiny
 * text + HTML message) into pieces of up to `limit` bytes. Each chunk that reaches the SMTP data stream becomes
 * its own socket write (a system call, and a TLS record under STARTTLS), which made socket writes the largest
 * single cost of sending; joined, a small message leaves in one write plus the final dot. The limit keeps a large
 * message streaming instead of held in memory whole.
 */
export class ChunkCoalescer extends Transform {
  readonly #limit: number;
  #chunks: Buffer[] = [];
  #size = 0;

  constructor(limit = 64 * 1024) {
    super();
    this.#limit = limit;
  }

  override _transform(chunk: Buffer | string, _encoding: BufferEncoding, done: TransformCallback): void {
    const buffer = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    this.#chunks.push(buffer);
    this.#size += buffer.length;
    if (this.#size >= this.#limit) this.#release();
    done();
  }

  override _flush(done: TransformCallback): void {
    if (this.#size > 0) this.#release();
    done();
  }

  #release(): void {
    this.push(this.#chunks.length === 1 ? this.#chunks[0] : Buffer.concat(this.#chunks, this.#size));
    this.#chunks = [];
    this.#size = 0;
  }
}

/** The part of a nodemailer message a `stream` plugin sees: the root MIME node, which takes output transforms. */
interface StreamPluginMail {
  message: { transform(transform: () => Transform): void };
}

/** A nodemailer `stream` plugin (`transporter.use('stream', coalesceChunks)`) that adds a ChunkCoalescer. */
export function coalesceChunks(mail: StreamPluginMail, done: (err?: Error | null) => void): void {
  mail.message.transform(() => new ChunkCoalescer());
  done();
}
