import { describe, expect, it } from 'vitest';
import { IncrementalJsonParser, JsonSyntaxError, MAX_DEPTH } from '../../src/web/json-stream.js';

// The incremental parser must answer what JSON.parse answers for the same bytes, wherever the chunks are cut: in
// the middle of an escape, of a \u sequence, of a surrogate pair, of a UTF-8 character or of a number.

function parseInChunks(bytes: Buffer, sizes: number[]): unknown {
  const parser = new IncrementalJsonParser();
  let at = 0;
  for (let i = 0; at < bytes.length; i++) {
    const size = sizes[i % sizes.length]!;
    parser.write(bytes.subarray(at, at + size));
    at += size;
  }
  return parser.end();
}

/** Every cut into two chunks, every cut into three around it, and 1- and 7-byte chunks. */
function expectSameEverywhere(text: string | Buffer): void {
  const bytes = Buffer.isBuffer(text) ? text : Buffer.from(text);
  const expected: unknown = JSON.parse(bytes.toString('utf8'));
  for (let cut = 0; cut <= bytes.length; cut++) {
    const parser = new IncrementalJsonParser();
    parser.write(bytes.subarray(0, cut));
    parser.write(bytes.subarray(cut, cut + 1));
    parser.write(bytes.subarray(cut + 1));
    expect(parser.end(), `cut at ${cut}`).toEqual(expected);
  }
  expect(parseInChunks(bytes, [1])).toEqual(expected);
  expect(parseInChunks(bytes, [7])).toEqual(expected);
}

function expectSyntaxError(text: string | Buffer, sizes = [1]): void {
  const bytes = Buffer.isBuffer(text) ? text : Buffer.from(text);
  expect(() => parseInChunks(bytes, [bytes.length || 1]), `whole: ${bytes.toString()}`).toThrow(JsonSyntaxError);
  expect(() => parseInChunks(bytes, sizes), `in chunks: ${bytes.toString()}`).toThrow(JsonSyntaxError);
}

describe('IncrementalJsonParser', () => {
  it('escapes split across chunks', () => {
    expectSameEverywhere(String.raw`{"a":"x\ny\"z\\w\/v\b\f\r\t","b\"":"\u00e9\u3053\u0000"}`);
  });

  it('surrogate pairs split across chunks, as escapes and as UTF-8; lone halves stay as JSON.parse keeps them', () => {
    expectSameEverywhere(String.raw`["\ud83d\ude00", "a\uD83D\uDE00b", "\ud83d", "\ude00x"]`);
    expectSameEverywhere('["😀", "a😀b", {"😀": "𝄞"}]');
    const [joined] = parseInChunks(Buffer.from(String.raw`["\ud83d\ude00"]`), [9]) as [string];
    expect(joined).toBe('😀');
    expect(joined.codePointAt(0)).toBe(0x1f600);
  });

  it('multi-byte UTF-8 split across chunks', () => {
    expectSameEverywhere(JSON.stringify({ subject: 'é件名😀', text: 'こんにちは\nÄrger über Umlaute' }));
  });

  it('bytes that are not UTF-8 become U+FFFD, as Buffer#toString has them', () => {
    // A lone continuation byte, a truncated three-byte character before the quote, and 0xff.
    const bytes = Buffer.concat([
      Buffer.from('["a'),
      Buffer.from([0x80, 0xe3, 0x81]),
      Buffer.from('", "'),
      Buffer.from([0xff]),
      Buffer.from('"]'),
    ]);
    expectSameEverywhere(bytes);
    expect(parseInChunks(bytes, [1])).toEqual(['a\ufffd\ufffd', '\ufffd']);
  });

  it('numbers split across chunks', () => {
    expectSameEverywhere('[0, -0, 12345.678e-3, -2.5E+3, 1e2, 9007199254740993, 0.1, 10]');
    expectSameEverywhere('{"n":123456789,"m":-1.5e-7}');
  });

  it('literals, nesting, blanks and empty containers', () => {
    expectSameEverywhere(' \r\n\t{ "a" : [ true , false , null , { } , [ ] , [ [ 1 ] ] ] , "b" : { "c" : "" } } \n');
    expectSameEverywhere('[]');
    expectSameEverywhere('{"a":1,"a":2}');
  });

  it('a "__proto__" key is an own property, as with JSON.parse, and leaves the prototype alone', () => {
    const value = parseInChunks(Buffer.from('{"__proto__":{"polluted":true},"a":1}'), [3]) as Record<string, unknown>;
    expect(Object.getPrototypeOf(value)).toBe(Object.prototype);
    expect(Object.keys(value)).toEqual(['__proto__', 'a']);
    expect((value as { polluted?: boolean }).polluted).toBeUndefined();
    expect(value).toEqual(JSON.parse('{"__proto__":{"polluted":true},"a":1}'));
  });

  it('a long string in large chunks comes out whole', () => {
    const content = Buffer.alloc(3 * 1024 * 1024, 'QUJD').toString();
    const bytes = Buffer.from(JSON.stringify({ attachments: [{ filename: 'f', content }] }));
    const value = parseInChunks(bytes, [65536, 1, 4095]) as { attachments: [{ content: string }] };
    expect(value.attachments[0].content).toBe(content);
  });

  it('only an object or an array at the top level (strict)', () => {
    for (const text of ['"to"', '1', 'null', 'true', ' "x"', '-1']) expectSyntaxError(text);
  });

  it('what JSON.parse refuses is refused, wherever the chunks are cut', () => {
    const bad = [
      '{"a":}',
      '{"a" 1}',
      '{a:1}',
      "{'a':1}",
      '[1,]',
      '{"a":1,}',
      '[01]',
      '[1.]',
      '[.5]',
      '[-]',
      '[1e]',
      '[+1]',
      '[tru]',
      '[nul]',
      '[True]',
      '["\u0001"]',
      '["a\nb"]',
      String.raw`["\x"]`,
      String.raw`["\u12g4"]`,
      '{"a":1}x',
      '{"a":1}{}',
      '[1 2]',
      '[1:2]',
      '{"a":1]',
      '[}',
      '{',
      '["abc',
      String.raw`["\u00`,
      '[1',
      '',
      '   ',
    ];
    for (const text of bad) {
      expect(() => JSON.parse(text) as unknown, text).toThrow(SyntaxError);
      expectSyntaxError(text);
      expectSyntaxError(text, [2, 1]);
    }
  });

  it(`nesting stops at ${MAX_DEPTH} levels`, () => {
    const ok = `${'['.repeat(MAX_DEPTH)}${']'.repeat(MAX_DEPTH)}`;
    expect(parseInChunks(Buffer.from(ok), [5])).toEqual(JSON.parse(ok));
    expectSyntaxError(`${'['.repeat(MAX_DEPTH + 1)}${']'.repeat(MAX_DEPTH + 1)}`);
    // Refused while it arrives: the rest of a body of brackets is not waited for.
    const parser = new IncrementalJsonParser();
    expect(() => parser.write(Buffer.from('['.repeat(MAX_DEPTH + 1)))).toThrow(/nested deeper/);
  });

  it('an error names the position in the body, counted across chunks', () => {
    expect(() => parseInChunks(Buffer.from('{"a": 1, "b": x}'), [4])).toThrow(/at position 14/);
  });
});
