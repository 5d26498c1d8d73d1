import type { Request } from 'express';
import { readCookie } from './cookies.js';

/**
 * Times on pages, in the reader's time zone: the browser tells it once through a small script that sets the
 * `mailgate_tz` cookie (public/time-zone.js); without it (no script yet, a first visit) times are in UTC and say
 * so. Templates print `<time datetime="ISO" title="ISO">local text</time>`, so the exact value is on hover.
 */

export const TIME_ZONE_COOKIE = 'mailgate_tz';

export interface LocalTime {
  iso: string;
  text: string;
}

export type TimeFormatter = (value: string | number | Date | null | undefined) => LocalTime | null;

function validZone(zone: string | null): string | null {
  if (!zone || zone.length > 64 || !/^[A-Za-z0-9_+\-/]+$/.test(zone)) return null;
  try {
    new Intl.DateTimeFormat('en', { timeZone: zone });
    return zone;
  } catch {
    return null;
  }
}

export function timeZoneOf(req: Pick<Request, 'headers'>): string {
  return validZone(readCookie(req, TIME_ZONE_COOKIE)) ?? 'UTC';
}

const formats = new Map<string, Intl.DateTimeFormat>();

export function timeFormatter(lang: string, timeZone: string): TimeFormatter {
  const key = `${lang}|${timeZone}`;
  let format = formats.get(key);
  if (!format) {
    format = new Intl.DateTimeFormat(lang === 'ja' ? 'ja-JP' : 'en-GB', {
      timeZone,
      year: 'numeric',
      month: '2-digit',
      day: '2-digit',
      hour: '2-digit',
      minute: '2-digit',
      second: '2-digit',
      timeZoneName: 'short',
    });
    formats.set(key, format);
  }
  const f = format;
  return (value) => {
    if (value === null || value === undefined) return null;
    const date = new Date(value);
    if (Number.isNaN(date.getTime())) return null;
    return { iso: date.toISOString(), text: f.format(date) };
  };
}

/** The formatter for this request's language and zone. */
export function timesFor(req: Pick<Request, 'headers'>, lang: string): TimeFormatter {
  return timeFormatter(lang, timeZoneOf(req));
}

/** The zone's offset from UTC at `ms`, in ms (Tokyo: +9 h). */
function zoneOffset(ms: number, timeZone: string): number {
  const parts = new Intl.DateTimeFormat('en-US', {
    timeZone,
    hourCycle: 'h23',
    year: 'numeric',
    month: '2-digit',
    day: '2-digit',
    hour: '2-digit',
    minute: '2-digit',
    second: '2-digit',
  }).formatToParts(new Date(ms));
  const get = (type: string) => Number(parts.find((p) => p.type === type)?.value ?? 0);
  const asUtc = Date.UTC(get('year'), get('month') - 1, get('day'), get('hour'), get('minute'), get('second'));
  return asUtc - Math.floor(ms / 1000) * 1000;
}

const LOCAL = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2}))?)?$/;

/**
 * A time typed in a form: a date or date-time without a zone is read in the reader's zone (what a
 * `datetime-local` input sends); one with `Z` or an offset is taken as it is. Null when it is not a time.
 */
export function parseLocalTime(value: string, timeZone: string): Date | null {
  const m = LOCAL.exec(value.trim());
  if (!m) {
    if (!/^\d{4}-\d{2}-\d{2}T[\d:.]+(?:Z|[+-]\d{2}:?\d{2})$/.test(value.trim())) return null;
    const d = new Date(value.trim());
    return Number.isNaN(d.getTime()) ? null : d;
  }
  const [, y, mo, d, h = '0', mi = '0', s = '0'] = m;
  const guess = Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s));
  if (Number.isNaN(guess)) return null;
  // Twice: the offset at the guess can differ from the offset at the answer across a DST change.
  let ms = guess - zoneOffset(guess, timeZone);
  ms = guess - zoneOffset(ms, timeZone);
  return new Date(ms);
}
