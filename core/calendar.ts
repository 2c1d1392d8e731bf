import { assertDate } from './names.ts';

/**
 * The US equities market calendar in America/New_York: trading dates, sessions, and the NYSE
 * holidays and early closes. Holidays follow NYSE Rule 7.2 (weekend observance, with New Year's
 * Day on a Saturday not observed) plus the one-off closures listed in {@link SPECIAL_CLOSURES}.
 */

/** Where a moment falls in the trading day. */
export type Session = 'pre' | 'regular' | 'post' | 'closed';

/** The session boundaries of one trading day, epoch ms. */
export interface TradingDay {
  date: string;
  /** 04:00 ET. */
  preOpenMs: number;
  /** 09:30 ET. */
  openMs: number;
  /** 16:00 ET, or 13:00 ET on an early-close day. */
  closeMs: number;
  /** 20:00 ET, or 17:00 ET on an early-close day. */
  postCloseMs: number;
  earlyClose: boolean;
}

/** One-off full-day closures outside the rules (national days of mourning). */
export const SPECIAL_CLOSURES: ReadonlyMap<string, string> = new Map([
  ['2018-12-05', 'National Day of Mourning (George H. W. Bush)'],
  ['2025-01-09', 'National Day of Mourning (Jimmy Carter)'],
]);

const ZONE = 'America/New_York';
const HOUR_MS = 3_600_000;
const DAY_MS = 86_400_000;

const formatter = new Intl.DateTimeFormat('en-US', {
  timeZone: ZONE,
  hourCycle: 'h23',
  year: 'numeric',
  month: 'numeric',
  day: 'numeric',
  hour: 'numeric',
  minute: 'numeric',
  second: 'numeric',
});

// UTC offsets change only on whole hours, so one Intl call per hour of time serves every event.
const offsetByHour = new Map<number, number>();

/** Offset of New York from UTC at `ms`, in ms (e.g. −4 h in summer). */
export function newYorkOffsetMs(ms: number): number {
  const hour = Math.floor(ms / HOUR_MS);
  let offset = offsetByHour.get(hour);
  if (offset === undefined) {
    const at = hour * HOUR_MS;
    const parts: Record<string, number> = {};
    for (const part of formatter.formatToParts(at)) parts[part.type] = Number(part.value);
    const wall = Date.UTC(
      parts['year']!,
      parts['month']! - 1,
      parts['day'],
      parts['hour'],
      parts['minute'],
      parts['second'],
    );
    offset = wall - at;
    if (offsetByHour.size > 100_000) offsetByHour.clear();
    offsetByHour.set(hour, offset);
  }
  return offset;
}

// New York's date changes only on a whole UTC hour too: one lookup per hour of event time.
const dateByHour = new Map<number, string>();

/** The New York calendar date (`YYYY-MM-DD`) of `ms`: the trading date events at `ms` belong to. */
export function tradingDateOf(ms: number): string {
  const hour = Math.floor(ms / HOUR_MS);
  let date = dateByHour.get(hour);
  if (date === undefined) {
    const at = hour * HOUR_MS;
    date = new Date(at + newYorkOffsetMs(at)).toISOString().slice(0, 10);
    if (dateByHour.size > 100_000) dateByHour.clear();
    dateByHour.set(hour, date);
  }
  return date;
}

/** Epoch ms of a New York wall-clock time (`HH:MM` or `HH:MM:SS[.fff]`) on `date`. */
export function newYorkTimeToMs(date: string, time: string): number {
  assertDate(date);
  const match = /^(\d{2}):(\d{2})(?::(\d{2}(?:\.\d{1,3})?))?$/.exec(time);
  if (match === null)
    throw new RangeError(`time must be HH:MM[:SS[.fff]], got ${JSON.stringify(time)}`);
  const [y, m, d] = date.split('-').map(Number) as [number, number, number];
  const secondsMs = Math.round(Number(match[3] ?? 0) * 1000);
  const wall = Date.UTC(y, m - 1, d, Number(match[1]), Number(match[2])) + secondsMs;
  // First guess with the offset at the wall time read as UTC, then correct once across a DST edge.
  const guess = wall - newYorkOffsetMs(wall);
  return wall - newYorkOffsetMs(guess);
}

/** The full-day holiday on `date`, by name, or `undefined`. */
export function holidayOn(date: string): string | undefined {
  assertDate(date);
  return holidaysOf(Number(date.slice(0, 4))).get(date) ?? SPECIAL_CLOSURES.get(date);
}

/** True when `date` is a weekday that is not a holiday. */
export function isTradingDate(date: string): boolean {
  return weekday(date) % 6 !== 0 && holidayOn(date) === undefined;
}

/** True when the regular session of `date` closes at 13:00 ET. */
export function isEarlyClose(date: string): boolean {
  return isTradingDate(date) && earlyClosesOf(Number(date.slice(0, 4))).has(date);
}

/** Session boundaries of `date`, or `undefined` when the market is closed all day. */
export function tradingDay(date: string): TradingDay | undefined {
  if (!isTradingDate(date)) return undefined;
  const earlyClose = isEarlyClose(date);
  return {
    date,
    preOpenMs: newYorkTimeToMs(date, '04:00'),
    openMs: newYorkTimeToMs(date, '09:30'),
    closeMs: newYorkTimeToMs(date, earlyClose ? '13:00' : '16:00'),
    postCloseMs: newYorkTimeToMs(date, earlyClose ? '17:00' : '20:00'),
    earlyClose,
  };
}

/** The session in progress at `ms`. */
export function sessionAt(ms: number): Session {
  const day = tradingDay(tradingDateOf(ms));
  if (day === undefined || ms < day.preOpenMs || ms >= day.postCloseMs) return 'closed';
  if (ms < day.openMs) return 'pre';
  return ms < day.closeMs ? 'regular' : 'post';
}

/** The last trading date strictly before `date` (whose close is `date`'s previous close). */
export function previousTradingDate(date: string): string {
  return stepTradingDate(date, -1);
}

/** The first trading date strictly after `date`. */
export function nextTradingDate(date: string): string {
  return stepTradingDate(date, 1);
}

function stepTradingDate(date: string, direction: 1 | -1): string {
  assertDate(date);
  let ms = Date.parse(`${date}T00:00:00Z`);
  for (let i = 0; i < 15; i++) {
    ms += direction * DAY_MS;
    const candidate = new Date(ms).toISOString().slice(0, 10);
    if (isTradingDate(candidate)) return candidate;
  }
  throw new RangeError(`no trading date within 15 days of ${date}`);
}

function weekday(date: string): number {
  return new Date(`${date}T00:00:00Z`).getUTCDay();
}

const holidayCache = new Map<number, Map<string, string>>();
const earlyCloseCache = new Map<number, Set<string>>();

function holidaysOf(year: number): Map<string, string> {
  let holidays = holidayCache.get(year);
  if (holidays !== undefined) return holidays;
  holidays = new Map<string, string>();
  const add = (ms: number | undefined, name: string): void => {
    if (ms !== undefined) holidays.set(iso(ms), name);
  };
  // New Year's Day on a Saturday is not observed on the Friday before (NYSE Rule 7.2).
  const newYear = Date.UTC(year, 0, 1);
  add(new Date(newYear).getUTCDay() === 6 ? undefined : observed(newYear), "New Year's Day");
  add(nthWeekday(year, 0, 1, 3), 'Martin Luther King Jr. Day');
  add(nthWeekday(year, 1, 1, 3), "Washington's Birthday");
  add(easterSunday(year) - 2 * DAY_MS, 'Good Friday');
  add(lastWeekday(year, 4, 1), 'Memorial Day');
  if (year >= 2022) add(observed(Date.UTC(year, 5, 19)), 'Juneteenth');
  add(observed(Date.UTC(year, 6, 4)), 'Independence Day');
  add(nthWeekday(year, 8, 1, 1), 'Labor Day');
  add(nthWeekday(year, 10, 4, 4), 'Thanksgiving Day');
  add(observed(Date.UTC(year, 11, 25)), 'Christmas Day');
  holidayCache.set(year, holidays);
  return holidays;
}

function earlyClosesOf(year: number): Set<string> {
  let closes = earlyCloseCache.get(year);
  if (closes !== undefined) return closes;
  closes = new Set<string>();
  // The day before Independence Day and Christmas Eve close early when they fall Monday–Thursday;
  // the day after Thanksgiving always does.
  for (const ms of [Date.UTC(year, 6, 3), Date.UTC(year, 11, 24)]) {
    const day = new Date(ms).getUTCDay();
    if (day >= 1 && day <= 4) closes.add(iso(ms));
  }
  closes.add(iso(nthWeekday(year, 10, 4, 4) + DAY_MS));
  earlyCloseCache.set(year, closes);
  return closes;
}

/** A Saturday holiday is observed on Friday, a Sunday one on Monday. */
function observed(ms: number): number {
  const day = new Date(ms).getUTCDay();
  return day === 6 ? ms - DAY_MS : day === 0 ? ms + DAY_MS : ms;
}

/** The `n`th given weekday (0 = Sunday) of a month (0-based), epoch ms at UTC midnight. */
function nthWeekday(year: number, month: number, day: number, n: number): number {
  const first = Date.UTC(year, month, 1);
  const shift = (day - new Date(first).getUTCDay() + 7) % 7;
  return first + (shift + (n - 1) * 7) * DAY_MS;
}

function lastWeekday(year: number, month: number, day: number): number {
  const last = Date.UTC(year, month + 1, 0);
  const shift = (new Date(last).getUTCDay() - day + 7) % 7;
  return last - shift * DAY_MS;
}

/** Gregorian Easter Sunday (the anonymous Gregorian algorithm), epoch ms at UTC midnight. */
function easterSunday(year: number): number {
  const a = year % 19;
  const b = Math.floor(year / 100);
  const c = year % 100;
  const d = Math.floor(b / 4);
  const e = b % 4;
  const f = Math.floor((b + 8) / 25);
  const g = Math.floor((b - f + 1) / 3);
  const h = (19 * a + b - d - g + 15) % 30;
  const i = Math.floor(c / 4);
  const k = c % 4;
  const l = (32 + 2 * e + 2 * i - h - k) % 7;
  const m = Math.floor((a + 11 * h + 22 * l) / 451);
  const month = Math.floor((h + l - 7 * m + 114) / 31);
  const day = ((h + l - 7 * m + 114) % 31) + 1;
  return Date.UTC(year, month - 1, day);
}

function iso(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10);
}
