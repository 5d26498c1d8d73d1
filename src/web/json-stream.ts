import { StringDecoder } from 'node:string_decoder';

/**
 * A JSON parser fed a body chunk by chunk as it arrives (write), which answers the value at the end (end). It
 * accepts exactly what JSON.parse accepts of the UTF-8 text (bytes that are not UTF-8 become U+FFFD, as in
 * Buffer#toString), except that the top level must be an object or an array (body-parser's `strict`) and nesting
 * stops at MAX_DEPTH. A chunk is done with once it has been written: nothing keeps the raw body.
 *
 * The work per chunk is proportional to the chunk, never to the body: a 25 MB body costs about 400 steps of a
 * fraction of a millisecond instead of one JSON.parse of half a second. Strings (where a large body's bytes are: the
 * base64 of attachments) are decoded a slice at a time between a quote, a backslash or the chunk's end; escapes
 * one character at a time. Structure is walked byte by byte, which is fine: a message has little of it.
 */

export class JsonSyntaxError extends Error {
  override name = 'JsonSyntaxError';
}

/** Deeper than any request of the API; without a bound, 25 MB of `[` would build 25 million nested arrays. */
export const MAX_DEPTH = 64;

const enum State {
  /** Before the top-level value: blanks, then `{` or `[`. */
  Start,
  /** A value is expected (after `:` or `,` in an array). */
  Value,
  /** Right after `[`: a value or `]`. */
  ValueOrEndArray,
  /** Right after `{`: a key or `}`. */
  KeyOrEndObject,
  /** After `,` in an object: a key. */
  Key,
  /** After a key: `:`. */
  Colon,
  /** After a value inside a container: `,` or the container's end. */
  CommaOrEnd,
  /** After the top-level value: only blanks. */
  Done,
  String,
  Escape,
  Unicode,
  Number,
  Literal,
}

const LITERALS: Record<number, [string, unknown]> = {
  0x74: ['true', true],
  0x66: ['false', false],
  0x6e: ['null', null],
};
const ESCAPES: Record<number, string> = {
  0x22: '"',
  0x5c: '\\',
  0x2f: '/',
  0x62: '\b',
  0x66: '\f',
  0x6e: '\n',
  0x72: '\r',
  0x74: '\t',
};
const NUMBER = /^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?$/;

function isBlank(c: number): boolean {
  return c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;
}

function isNumberChar(c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || c === 0x2d || c === 0x2b || c === 0x2e || c === 0x65 || c === 0x45;
}

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x61 && c <= 0x66) return c - 0x57;
  if (c >= 0x41 && c <= 0x46) return c - 0x37;
  return -1;
}

type Container = Record<string, unknown> | unknown[];

export class IncrementalJsonParser {
  #state = State.Start;
  /** Open containers, outermost first, and the key each object is filling. */
  readonly #containers: Container[] = [];
  readonly #keys: (string | null)[] = [];
  #result: unknown = undefined;
  /** The string being read, whether it is a key, and the decoder that carries a character split across chunks. */
  #text = '';
  #isKey = false;
  readonly #decoder = new StringDecoder('utf8');
  /** \uXXXX: the digits read so far and their value. */
  #hexDigits = 0;
  #hexValue = 0;
  #number = '';
  #literal = '';
  #literalValue: unknown = null;
  #literalAt = 0;
  /** Bytes written, for error messages. */
  #offset = 0;

  write(chunk: Uint8Array): void {
    const length = chunk.length;
    let i = 0;
    while (i < length) {
      const state = this.#state;
      if (state === State.String) {
        i = this.#readString(chunk, i);
        continue;
      }
      const c = chunk[i]!;
      switch (state) {
        case State.Start:
          if (isBlank(c)) break;
          if (c !== 0x7b && c !== 0x5b) this.#fail(i, 'the body is not a JSON object or array');
          this.#open(c, i);
          break;
        case State.Value:
        case State.ValueOrEndArray:
          if (isBlank(c)) break;
          if (state === State.ValueOrEndArray && c === 0x5d) {
            this.#close();
            break;
          }
          this.#startValue(c, i);
          break;
        case State.KeyOrEndObject:
        case State.Key:
          if (isBlank(c)) break;
          if (state === State.KeyOrEndObject && c === 0x7d) {
            this.#close();
            break;
          }
          if (c !== 0x22) this.#fail(i, 'expected a property name in double quotes');
          this.#startString(true);
          break;
        case State.Colon:
          if (isBlank(c)) break;
          if (c !== 0x3a) this.#fail(i, "expected ':' after a property name");
          this.#state = State.Value;
          break;
        case State.CommaOrEnd: {
          if (isBlank(c)) break;
          const inArray = Array.isArray(this.#containers[this.#containers.length - 1]);
          if (c === 0x2c) this.#state = inArray ? State.Value : State.Key;
          else if (c === (inArray ? 0x5d : 0x7d)) this.#close();
          else this.#fail(i, inArray ? "expected ',' or ']'" : "expected ',' or '}'");
          break;
        }
        case State.Done:
          if (!isBlank(c)) this.#fail(i, 'unexpected data after the JSON value');
          break;
        case State.Escape:
          if (c === 0x75) {
            this.#hexDigits = 0;
            this.#hexValue = 0;
            this.#state = State.Unicode;
            break;
          }
          if (ESCAPES[c] === undefined) this.#fail(i, 'bad escape in a string');
          this.#text += ESCAPES[c];
          this.#state = State.String;
          break;
        case State.Unicode: {
          const digit = hexValue(c);
          if (digit < 0) this.#fail(i, 'bad \\u escape in a string');
          this.#hexValue = this.#hexValue * 16 + digit;
          // Each \uXXXX is one UTF-16 code unit, as in JSON.parse: the two halves of a pair join in the string.
          if (++this.#hexDigits === 4) {
            this.#text += String.fromCharCode(this.#hexValue);
            this.#state = State.String;
          }
          break;
        }
        case State.Number:
          if (isNumberChar(c)) {
            this.#number += String.fromCharCode(c);
            break;
          }
          this.#endNumber(i);
          // The byte that ended the number belongs to what follows it.
          continue;
        case State.Literal:
          if (c !== this.#literal.charCodeAt(this.#literalAt)) this.#fail(i, 'unexpected token');
          if (++this.#literalAt === this.#literal.length) this.#addValue(this.#literalValue);
          break;
      }
      i++;
    }
    this.#offset += length;
  }

  /** The parsed value, once the body has ended; throws when the body stopped short of a whole value. */
  end(): unknown {
    if (this.#state !== State.Done) this.#fail(0, 'unexpected end of JSON input');
    return this.#result;
  }

  #fail(at: number, message: string): never {
    throw new JsonSyntaxError(`${message} at position ${this.#offset + at}`);
  }

  #startValue(c: number, at: number): void {
    if (c === 0x7b || c === 0x5b) this.#open(c, at);
    else if (c === 0x22) this.#startString(false);
    else if (c === 0x2d || (c >= 0x30 && c <= 0x39)) {
      this.#number = String.fromCharCode(c);
      this.#state = State.Number;
    } else if (LITERALS[c] !== undefined) {
      [this.#literal, this.#literalValue] = LITERALS[c];
      this.#literalAt = 1;
      this.#state = State.Literal;
    } else this.#fail(at, 'unexpected token');
  }

  #open(c: number, at: number): void {
    if (this.#containers.length >= MAX_DEPTH) this.#fail(at, `nested deeper than ${MAX_DEPTH} levels`);
    const isArray = c === 0x5b;
    this.#containers.push(isArray ? [] : {});
    this.#keys.push(null);
    this.#state = isArray ? State.ValueOrEndArray : State.KeyOrEndObject;
  }

  #close(): void {
    this.#keys.pop();
    this.#addValue(this.#containers.pop());
  }

  #addValue(value: unknown): void {
    const parent = this.#containers[this.#containers.length - 1];
    if (parent === undefined) {
      this.#result = value;
      this.#state = State.Done;
      return;
    }
    if (Array.isArray(parent)) parent.push(value);
    else {
      const key = this.#keys[this.#keys.length - 1]!;
      // JSON.parse makes "__proto__" an own property; an assignment would set the object's prototype instead.
      if (key === '__proto__')
        Object.defineProperty(parent, key, { value, writable: true, enumerable: true, configurable: true });
      else parent[key] = value;
    }
    this.#state = State.CommaOrEnd;
  }

  #endNumber(at: number): void {
    if (!NUMBER.test(this.#number)) this.#fail(at, 'bad number');
    this.#addValue(Number(this.#number));
  }

  #startString(isKey: boolean): void {
    this.#text = '';
    this.#isKey = isKey;
    this.#state = State.String;
  }

  /** Reads string bytes from `start` up to a quote, a backslash or the chunk's end; answers where it stopped. */
  #readString(chunk: Uint8Array, start: number): number {
    const length = chunk.length;
    let i = start;
    let c = 0;
    while (i < length) {
      c = chunk[i]!;
      if (c === 0x22 || c === 0x5c || c < 0x20) break;
      i++;
    }
    if (i > start) this.#text += this.#decoder.write(chunk.subarray(start, i));
    if (i === length) return i;
    // A quote or backslash ends any multi-byte character: an unfinished one is not UTF-8 and becomes U+FFFD.
    this.#text += this.#decoder.end();
    if (c < 0x20) this.#fail(i, 'bad control character in a string');
    if (c === 0x5c) {
      this.#state = State.Escape;
      return i + 1;
    }
    const text = this.#text;
    this.#text = '';
    if (this.#isKey) {
      this.#keys[this.#keys.length - 1] = text;
      this.#state = State.Colon;
    } else this.#addValue(text);
    return i + 1;
  }
}
