import { setImmediate as nextTurn } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { deriveTextPart, htmlToText, SLICE_CHARS, SYNC_LIMIT_CHARS } from './html-text.js';

describe('htmlToText', () => {
  it.each([
    ['<p>One</p><p>Two &amp; three</p>', 'One\n\nTwo & three'],
    ['a < b and c > d', 'a < b and c > d'],
    ['<p>Hi<br/>there   <br>  </p>', 'Hi\nthere'],
    ['x<script>if (a < b) {}</script>y<style>p{}</style>z', 'xyz'],
    ['<html><head><title>T</title></head><body>Body</body></html>', 'Body'],
    ['<head><title>T</title><body>Body', 'Body'],
    ['<a href="https://x.example/">https://x.example/</a>', 'https://x.example/'],
    ["<a href='https://x.example/?a=1&amp;b=2'>Go</a>", 'Go (https://x.example/?a=1&b=2)'],
    ['<a href="https://a.example/"></a>', 'https://a.example/'],
    ['<a href="1">one<a href="2">two</a>', 'one (1)two (2)'],
    ['&lt;b&gt; &#65;&#x42; &bogus; &#0;', '<b> AB &bogus; &#0;'],
    ['&constructor; &toString; &__proto__;', '&constructor; &toString; &__proto__;'],
    ['before <unclosed tag', 'before <unclosed tag'],
    ['x<!-- a > b -->y', 'xy'],
    ['x<script>never closed', 'x'],
    ['\n\n  <p>  a  </p>\n\n\n\n<p>b</p>  \n', 'a\n\nb'],
  ])('%j → %j', (html, text) => {
    expect(htmlToText(html)).toBe(text);
  });
});

describe('deriveTextPart', () => {
  it('converts a large body in slices, with the event loop free between them, to the same text', async () => {
    // Entities, links and tags fall on every kind of slice boundary.
    const html =
      '<p>Fish &amp; chips &#x263A; <a href="https://x.example/?a=1&amp;b=2">menu</a></p>\n'.repeat(
        Math.ceil((3 * SLICE_CHARS) / 80),
      ) +
      'x'.repeat(SLICE_CHARS) +
      '&amp;';
    expect(html.length).toBeGreaterThan(SYNC_LIMIT_CHARS);
    let turns = 0;
    let converting = true;
    const ticker = (async () => {
      while (converting) {
        await nextTurn();
        turns++;
      }
    })();
    const text = await deriveTextPart(html);
    converting = false;
    await ticker;
    expect(text).toBe(htmlToText(html));
    expect(text.endsWith('x&')).toBe(true);
    expect(turns).toBeGreaterThanOrEqual(Math.floor(html.length / SLICE_CHARS) - 1);
  });

  it('is never empty, so the message stays multipart', async () => {
    expect(await deriveTextPart('<p> </p>')).toBe(' ');
  });
});

/** CPU time of `runs` conversions of `html`, in ms (CPU, not wall time: other processes on the machine do not count). */
function cpuMs(html: string, runs: number): number {
  const before = process.cpuUsage();
  for (let i = 0; i < runs; i++) htmlToText(html);
  const used = process.cpuUsage(before);
  return (used.user + used.system) / 1000;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

describe('htmlToText takes time linear in the input, also on crafted input', () => {
  // The bodies that made the regular expressions of the earlier conversion take quadratic (or worse) time.
  const crafted: Array<[string, (chars: number) => string]> = [
    ['a run of <', (n) => '<'.repeat(n)],
    ['unclosed tags', (n) => '<a'.repeat(n / 2)],
    ['unclosed href values', (n) => '<a href="'.repeat(n / 9)],
    ['spaces without a line end', (n) => ' '.repeat(n) + 'x'],
    ['unclosed scripts', (n) => '<script>'.repeat(n / 8)],
    ['many short tags and links', (n) => '<b>x</b><a href="y">z</a><br>'.repeat(n / 30)],
  ];
  const SMALL = 4_000;

  it.each(crafted)('%s: 8× the input takes at most 16× the time', (_name, make) => {
    const small = make(SMALL);
    const large = make(8 * SMALL);
    // Compiled first (a cold run is several times slower), then as many runs of the small body as take about
    // 20 ms of CPU, so that a measurement is far above the clock's granularity.
    cpuMs(small, 3);
    cpuMs(large, 1);
    let runs = 0;
    for (let spent = 0; spent < 20 && runs < 100_000; runs++) spent += cpuMs(small, 1);
    // Side by side in one run, the median of several pairs: the machine's speed drifts, a ratio far less.
    const ratios: number[] = [];
    for (let i = 0; i < 5; i++) {
      const s = cpuMs(small, runs);
      const l = cpuMs(large, runs);
      ratios.push(l / Math.max(s, 0.001));
    }
    expect(median(ratios), `ratios ${ratios.map((r) => r.toFixed(1)).join(', ')}`).toBeLessThanOrEqual(16);
  });
});
