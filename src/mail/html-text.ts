import { setImmediate as nextTurn } from 'node:timers/promises';

/**
 * The plain-text part of a message derived from its HTML body: paragraphs, line breaks, list items and links
 * (`label (href)`) survive, other markup, scripts and styles are dropped, entities are decoded.
 *
 * One forward pass over the input with indexOf and a few character comparisons per position: no regular
 * expression that can backtrack runs over the body, and every search that finds nothing is remembered, so no
 * part of the input is scanned twice. Crafted bodies (a million `<`, unclosed tags or scripts, endless spaces)
 * cost the same per character as ordinary mail. Bodies longer than SYNC_LIMIT_CHARS are converted in slices
 * that yield to the event loop in between.
 */

/**
 * Up to this length the text is derived in one go. A megabyte costs 20–60 ms of CPU (measured on a loaded
 * 2-core machine), so longer bodies go in slices and no turn of the event loop takes more than a few ms.
 */
export const SYNC_LIMIT_CHARS = 256 * 1024;
/**
 * Larger bodies are converted this much at a time, with the event loop free between slices; a slice also ends
 * after SLICE_MS (code not yet compiled by the JIT runs several times slower).
 */
export const SLICE_CHARS = 64 * 1024;
export const SLICE_MS = 8;

const BLOCK_ENDS = new Set([
  'p',
  'div',
  'h1',
  'h2',
  'h3',
  'h4',
  'h5',
  'h6',
  'tr',
  'table',
  'ul',
  'ol',
  'blockquote',
  'pre',
]);
// Where the content of elements that are never shown ends (script and style: to the end of the body when
// unclosed). Fixed-length literals and a one-character lookahead: these cannot backtrack.
const SCRIPT_END = /<\/script(?![\w:-])/gi;
const STYLE_END = /<\/style(?![\w:-])/gi;
const HEAD_END = /<\/head(?![\w:-])|<body(?![\w:-])/gi;
// A Map, not an object literal: `&constructor;` must not find Object.prototype.constructor.
const ENTITIES = new Map([
  ['amp', '&'],
  ['lt', '<'],
  ['gt', '>'],
  ['quot', '"'],
  ['apos', "'"],
  ['nbsp', ' '],
]);
/** No entity this converter decodes is longer; a slice boundary never cuts closer than this to an `&`. */
const MAX_ENTITY_CHARS = 40;

const isAsciiLetter = (c: number) => (c >= 65 && c <= 90) || (c >= 97 && c <= 122);
const isDigit = (c: number) => c >= 48 && c <= 57;
const isHexDigit = (c: number) => isDigit(c) || (c >= 65 && c <= 70) || (c >= 97 && c <= 102);

/** The character(s) of the entity starting at the `&` at `amp` and where it ends, or null if there is none. */
function entityAt(text: string, amp: number): { value: string; end: number } | null {
  const limit = Math.min(text.length, amp + MAX_ENTITY_CHARS);
  let i = amp + 1;
  if (text.charCodeAt(i) === 35) {
    const hex = text.charCodeAt(i + 1) === 120 || text.charCodeAt(i + 1) === 88;
    i += hex ? 2 : 1;
    const digits = i;
    while (i < limit && (hex ? isHexDigit : isDigit)(text.charCodeAt(i))) i++;
    if (i === digits || text.charCodeAt(i) !== 59) return null;
    const code = Number.parseInt(text.slice(digits, i), hex ? 16 : 10);
    return code > 0 && code < 0x110000 ? { value: String.fromCodePoint(code), end: i + 1 } : null;
  }
  while (i < limit && isAsciiLetter(text.charCodeAt(i))) i++;
  if (i === amp + 1 || text.charCodeAt(i) !== 59) return null;
  const value = ENTITIES.get(text.slice(amp + 1, i).toLowerCase());
  return value === undefined ? null : { value, end: i + 1 };
}

function decodeEntities(text: string): string {
  let amp = text.indexOf('&');
  if (amp === -1) return text;
  let out = '';
  let done = 0;
  while (amp !== -1) {
    const entity = entityAt(text, amp);
    if (entity) {
      out += text.slice(done, amp) + entity.value;
      done = entity.end;
    }
    amp = text.indexOf('&', entity ? entity.end : amp + 1);
  }
  return out + text.slice(done);
}

const isNameChar = (c: number) => isAsciiLetter(c) || (c >= 48 && c <= 57) || c === 45 || c === 58;
const isSpace = (c: number) => c === 32 || c === 9 || c === 10 || c === 13 || c === 12;

/**
 * The text as it is produced: spaces and tabs at the end of a line are dropped, runs of empty lines become one,
 * and leading and trailing white space is trimmed, without going over the text again.
 */
class TextOutput {
  private readonly parts: string[] = [];
  /** Spaces and tabs seen since the last visible character of the current line (dropped if the line ends). */
  private blank = '';
  private newlines = 0;
  private started = false;

  write(text: string): void {
    let start = 0;
    for (let nl = text.indexOf('\n'); nl !== -1; nl = text.indexOf('\n', start)) {
      this.inline(text.slice(start, nl));
      this.blank = '';
      this.newlines++;
      start = nl + 1;
    }
    this.inline(start === 0 ? text : text.slice(start));
  }

  private inline(piece: string): void {
    if (!piece) return;
    let end = piece.length;
    while (end > 0 && (piece.charCodeAt(end - 1) === 32 || piece.charCodeAt(end - 1) === 9)) end--;
    if (end === 0) {
      this.blank += piece;
      return;
    }
    let visible = end === piece.length ? piece : piece.slice(0, end);
    if (!this.started) {
      visible = (this.blank + visible).trimStart();
      this.blank = piece.slice(end);
      this.newlines = 0;
      if (!visible) return;
      this.started = true;
      this.parts.push(visible);
      return;
    }
    if (this.newlines > 0) {
      this.parts.push(this.newlines > 1 ? '\n\n' : '\n');
      this.newlines = 0;
    }
    if (this.blank) this.parts.push(this.blank);
    this.parts.push(visible);
    this.blank = end === piece.length ? '' : piece.slice(end);
  }

  result(): string {
    return this.parts.join('').trimEnd();
  }
}

/** The href of an `<a …>` tag (attributes between `from` and the closing `>` at `to`), or null. */
function hrefOf(html: string, from: number, to: number): string | null {
  let i = from;
  while (i < to) {
    while (i < to && (isSpace(html.charCodeAt(i)) || html.charCodeAt(i) === 47)) i++;
    const nameStart = i;
    while (i < to && !isSpace(html.charCodeAt(i)) && html.charCodeAt(i) !== 61 && html.charCodeAt(i) !== 47) i++;
    const name = html.slice(nameStart, i).toLowerCase();
    while (i < to && isSpace(html.charCodeAt(i))) i++;
    if (html.charCodeAt(i) !== 61 || i >= to) {
      if (i === nameStart) i++;
      continue;
    }
    i++;
    while (i < to && isSpace(html.charCodeAt(i))) i++;
    const quote = html.charCodeAt(i);
    let value: string;
    if (quote === 34 || quote === 39) {
      // Searched within the tag only: a quote that is never closed must not send every tag to the body's end.
      let end = i + 1;
      while (end < to && html.charCodeAt(end) !== quote) end++;
      value = html.slice(i + 1, end);
      i = end + 1;
    } else {
      const valueStart = i;
      while (i < to && !isSpace(html.charCodeAt(i))) i++;
      value = html.slice(valueStart, i);
    }
    if (name === 'href') return decodeEntities(value);
  }
  return null;
}

/** A resumable conversion: `run(limit)` handles everything that starts before `limit`. */
class HtmlToText {
  private pos = 0;
  private readonly out = new TextOutput();
  /** The open link: its href and the text of its label so far. */
  private link: { href: string; label: string[] } | null = null;
  /** Searches that found nothing from some position find nothing from any later one either. */
  private readonly missing = new Set<string>();
  /** Where the next markup starts (the body's length when there is none), once known; -1 or behind `pos` before. */
  private nextMarkup = -1;

  constructor(private readonly html: string) {}

  get done(): boolean {
    return this.pos >= this.html.length;
  }

  get position(): number {
    return this.pos;
  }

  private emit(text: string): void {
    if (!text) return;
    if (this.link) this.link.label.push(text);
    else this.out.write(text);
  }

  private closeLink(): void {
    const link = this.link;
    if (!link) return;
    this.link = null;
    const label = link.label.join('');
    const shown = label.trim();
    this.emit(shown && shown !== link.href ? `${label} (${link.href})` : link.href);
  }

  /** indexOf that remembers a miss, so that a body of a million unclosed tags is not searched a million times. */
  private find(needle: string, from: number): number {
    if (this.missing.has(needle)) return -1;
    const at = this.html.indexOf(needle, from);
    if (at === -1) this.missing.add(needle);
    return at;
  }

  /**
   * Where the first match of `pattern` (global, case-insensitive, a fixed-length alternative of literals) at or
   * after `from` starts, or -1.
   */
  private findTag(pattern: RegExp, from: number): number {
    if (this.missing.has(pattern.source)) return -1;
    pattern.lastIndex = from;
    const match = pattern.exec(this.html);
    if (!match) this.missing.add(pattern.source);
    return match ? match.index : -1;
  }

  /** Does a `<` at `at` start markup (a tag, an end tag, a comment or a declaration)? Otherwise it is text. */
  private startsMarkup(at: number): boolean {
    const c = this.html.charCodeAt(at + 1);
    return isAsciiLetter(c) || c === 33 || c === 63 || (c === 47 && isAsciiLetter(this.html.charCodeAt(at + 2)));
  }

  /** Handles what starts before `limit`, or stops earlier once `deadline` (performance.now()) has passed. */
  run(limit: number, deadline = Infinity): void {
    const html = this.html;
    for (let steps = 1; this.pos < html.length && this.pos < limit; steps++) {
      if (steps % 512 === 0 && performance.now() > deadline) return;
      let textEnd = this.nextMarkup;
      if (textEnd < this.pos) {
        // Checked up to the slice's end only: a run of `<` that start no markup is long text, not one step.
        let lt = html.indexOf('<', this.pos);
        while (lt !== -1 && lt < limit && !this.startsMarkup(lt)) lt = html.indexOf('<', lt + 1);
        textEnd = lt === -1 ? html.length : lt;
        if (lt < limit) this.nextMarkup = textEnd;
      }
      if (textEnd > this.pos) {
        let end = Math.min(textEnd, Math.max(limit, this.pos + 1));
        if (end < textEnd) {
          // A slice ends inside the text: never between an `&` and its `;`.
          const amp = html.lastIndexOf('&', end - 1);
          if (amp > this.pos && amp > end - MAX_ENTITY_CHARS && !html.slice(amp, end).includes(';')) end = amp;
        }
        this.emit(decodeEntities(html.slice(this.pos, end)));
        this.pos = end;
        continue;
      }
      this.markup(textEnd);
    }
  }

  /** Handles the markup starting at `lt` and moves past it. */
  private markup(lt: number): void {
    const html = this.html;
    if (html.startsWith('<!--', lt)) {
      const end = this.find('-->', lt + 4);
      if (end !== -1) {
        this.pos = end + 3;
        return;
      }
    }
    const gt = this.find('>', lt + 1);
    if (gt === -1) {
      // Not a tag after all: shown as written (nothing after it is markup either).
      this.emit(decodeEntities(html.slice(lt)));
      this.pos = html.length;
      return;
    }
    this.pos = gt + 1;
    const closing = html.charCodeAt(lt + 1) === 47;
    let nameEnd = lt + (closing ? 2 : 1);
    while (nameEnd < gt && isNameChar(html.charCodeAt(nameEnd))) nameEnd++;
    const name = html.slice(lt + (closing ? 2 : 1), nameEnd).toLowerCase();
    if (closing) {
      if (name === 'a') this.closeLink();
      else if (BLOCK_ENDS.has(name)) this.emit('\n\n');
      return;
    }
    if (name === 'br') this.emit('\n');
    else if (name === 'li') this.emit('\n- ');
    else if (name === 'a') {
      // Links do not nest: a new one ends the open one, as in browsers.
      this.closeLink();
      const href = hrefOf(html, nameEnd, gt);
      if (href !== null) this.link = { href, label: [] };
    } else if (name === 'script' || name === 'style') {
      const end = this.findTag(name === 'script' ? SCRIPT_END : STYLE_END, this.pos);
      this.pos = end === -1 ? html.length : end;
    } else if (name === 'head') {
      const end = this.findTag(HEAD_END, this.pos);
      if (end !== -1) this.pos = end;
    }
  }

  result(): string {
    // An unclosed link keeps its label as text, href-less, as it reads in the HTML part.
    const link = this.link;
    this.link = null;
    if (link) this.emit(link.label.join(''));
    return this.out.result();
  }
}

/** The text of an HTML body, converted at once (callers keep it to SYNC_LIMIT_CHARS on the event loop). */
export function htmlToText(html: string): string {
  const conversion = new HtmlToText(html);
  conversion.run(Infinity);
  return conversion.result();
}

/**
 * The text part for a message given only as HTML: at once up to SYNC_LIMIT_CHARS, beyond that in slices of
 * at most SLICE_CHARS and about SLICE_MS with the event loop free in between. Never empty (nodemailer drops an empty part and the
 * message would no longer be multipart/alternative).
 */
export async function deriveTextPart(html: string): Promise<string> {
  if (html.length <= SYNC_LIMIT_CHARS) return htmlToText(html) || ' ';
  const conversion = new HtmlToText(html);
  while (!conversion.done) {
    conversion.run(conversion.position + SLICE_CHARS, performance.now() + SLICE_MS);
    await nextTurn();
  }
  return conversion.result() || ' ';
}
