import type { HourlyOutcomes, Outcome } from '../mail/queue.js';
import { OUTCOMES } from '../mail/queue.js';
import type { TimeFormatter } from './time.js';

/**
 * The queue page's chart: sent, deferred and failed messages per hour over 7 days, as numbers for an inline
 * SVG the template draws (lines with presentation attributes and classes, no script and no style attribute, so
 * the CSP needs nothing extra). The day lines and labels are at midnight in the reader's time zone.
 */

export const CHART = { width: 840, height: 200, left: 44, right: 8, top: 10, bottom: 34 } as const;
export const SERIES_COLORS: Record<Outcome, string> = { sent: '#15803d', deferred: '#b45309', failed: '#b91c1c' };

export interface ChartSeries {
  outcome: Outcome;
  color: string;
  points: string;
  total: number;
}

export interface ChartData {
  width: number;
  height: number;
  plot: { x0: number; x1: number; y0: number; y1: number };
  max: number;
  series: ChartSeries[];
  days: { x: number; label: string }[];
  ticks: { y: number; label: string }[];
  from: string;
  to: string;
}

/** A round upper bound: 1, 2, 5 × 10^n. */
function niceMax(value: number): number {
  if (value <= 4) return 4;
  const magnitude = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 5, 10]) if (step * magnitude >= value) return step * magnitude;
  return 10 * magnitude;
}

export function chartData(hourly: HourlyOutcomes, times: TimeFormatter, dayLabel: (ms: number) => string): ChartData {
  const { width, height, left, right, top, bottom } = CHART;
  const plot = { x0: left, x1: width - right, y0: height - bottom, y1: top };
  const n = hourly.hours.length;
  const max = niceMax(Math.max(0, ...OUTCOMES.flatMap((o) => hourly.counts[o])));
  const x = (i: number) => plot.x0 + ((plot.x1 - plot.x0) * i) / Math.max(1, n - 1);
  const y = (v: number) => plot.y0 - ((plot.y0 - plot.y1) * v) / max;
  const round = (v: number) => Math.round(v * 10) / 10;
  const series = OUTCOMES.map((outcome) => ({
    outcome,
    color: SERIES_COLORS[outcome],
    points: hourly.counts[outcome].map((v, i) => `${round(x(i))},${round(y(v))}`).join(' '),
    total: hourly.counts[outcome].reduce((a, b) => a + b, 0),
  }));
  // A day line where the local date changes between two hours.
  const days: ChartData['days'] = [];
  let previous = '';
  hourly.hours.forEach((ms, i) => {
    const label = dayLabel(ms);
    if (previous && label !== previous) days.push({ x: round(x(i)), label });
    previous = label;
  });
  const ticks = [0, max / 2, max].map((v) => ({ y: round(y(v)), label: String(v) }));
  return {
    width,
    height,
    plot,
    max,
    series,
    days,
    ticks,
    from: times(hourly.hours[0] ?? 0)?.text ?? '',
    to: times((hourly.hours.at(-1) ?? 0) + 3_600_000)?.text ?? '',
  };
}

/** "11/02" style day labels in the reader's zone. */
export function dayLabeller(lang: string, timeZone: string): (ms: number) => string {
  const f = new Intl.DateTimeFormat(lang === 'ja' ? 'ja-JP' : 'en-GB', { timeZone, month: '2-digit', day: '2-digit' });
  return (ms) => f.format(new Date(ms));
}
