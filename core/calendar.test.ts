import { describe, expect, it } from 'vitest';
import {
  holidayOn,
  isEarlyClose,
  isTradingDate,
  newYorkTimeToMs,
  nextTradingDate,
  previousTradingDate,
  sessionAt,
  tradingDateOf,
  tradingDay,
} from './calendar.ts';

// NYSE's published holiday and early-close calendars.
const HOLIDAYS: Record<number, string[]> = {
  2024: [
    '2024-01-01',
    '2024-01-15',
    '2024-02-19',
    '2024-03-29',
    '2024-05-27',
    '2024-06-19',
    '2024-07-04',
    '2024-09-02',
    '2024-11-28',
    '2024-12-25',
  ],
  2025: [
    '2025-01-01',
    '2025-01-09',
    '2025-01-20',
    '2025-02-17',
    '2025-04-18',
    '2025-05-26',
    '2025-06-19',
    '2025-07-04',
    '2025-09-01',
    '2025-11-27',
    '2025-12-25',
  ],
  2026: [
    '2026-01-01',
    '2026-01-19',
    '2026-02-16',
    '2026-04-03',
    '2026-05-25',
    '2026-06-19',
    '2026-07-03',
    '2026-09-07',
    '2026-11-26',
    '2026-12-25',
  ],
  2027: [
    '2027-01-01',
    '2027-01-18',
    '2027-02-15',
    '2027-03-26',
    '2027-05-31',
    '2027-06-18',
    '2027-07-05',
    '2027-09-06',
    '2027-11-25',
    '2027-12-24',
  ],
};
const EARLY_CLOSES: Record<number, string[]> = {
  2024: ['2024-07-03', '2024-11-29', '2024-12-24'],
  2025: ['2025-07-03', '2025-11-28', '2025-12-24'],
  2026: ['2026-11-27', '2026-12-24'],
  2027: ['2027-11-26'],
};

function weekdaysOf(year: number): string[] {
  const out: string[] = [];
  for (let ms = Date.UTC(year, 0, 1); ms < Date.UTC(year + 1, 0, 1); ms += 86_400_000) {
    const day = new Date(ms).getUTCDay();
    if (day !== 0 && day !== 6) out.push(new Date(ms).toISOString().slice(0, 10));
  }
  return out;
}

describe('market calendar', () => {
  for (const year of [2024, 2025, 2026, 2027]) {
    it(`closes on exactly NYSE's ${year} holidays and closes early on exactly its early-close days`, () => {
      const weekdays = weekdaysOf(year);
      expect(weekdays.filter((d) => !isTradingDate(d))).toEqual(HOLIDAYS[year]);
      expect(weekdays.filter((d) => isEarlyClose(d))).toEqual(EARLY_CLOSES[year]);
    });
  }

  it('names holidays and closes on weekends', () => {
    expect(holidayOn('2026-07-03')).toBe('Independence Day');
    expect(holidayOn('2025-01-09')).toMatch(/Mourning/);
    expect(holidayOn('2026-11-24')).toBeUndefined();
    expect(isTradingDate('2026-11-28')).toBe(false);
    expect(tradingDay('2026-11-29')).toBeUndefined();
  });

  it('does not observe a Saturday New Year on the Friday before', () => {
    expect(isTradingDate('2021-12-31')).toBe(true);
    expect(isTradingDate('2022-01-03')).toBe(true);
  });

  it('places sessions at New York times in winter and summer', () => {
    const winter = tradingDay('2026-01-05')!;
    expect(new Date(winter.openMs).toISOString()).toBe('2026-01-05T14:30:00.000Z');
    expect(new Date(winter.preOpenMs).toISOString()).toBe('2026-01-05T09:00:00.000Z');
    const summer = tradingDay('2026-07-06')!;
    expect(new Date(summer.openMs).toISOString()).toBe('2026-07-06T13:30:00.000Z');
    expect(new Date(summer.postCloseMs).toISOString()).toBe('2026-07-07T00:00:00.000Z');
    const early = tradingDay('2026-11-27')!;
    expect(new Date(early.closeMs).toISOString()).toBe('2026-11-27T18:00:00.000Z');
    expect(new Date(early.postCloseMs).toISOString()).toBe('2026-11-27T22:00:00.000Z');
  });

  it('keeps 09:30 ET right across both DST changes', () => {
    // DST starts 2026-03-08 and ends 2026-11-01.
    expect(new Date(newYorkTimeToMs('2026-03-06', '09:30')).toISOString()).toBe(
      '2026-03-06T14:30:00.000Z',
    );
    expect(new Date(newYorkTimeToMs('2026-03-09', '09:30')).toISOString()).toBe(
      '2026-03-09T13:30:00.000Z',
    );
    expect(new Date(newYorkTimeToMs('2026-10-30', '09:30')).toISOString()).toBe(
      '2026-10-30T13:30:00.000Z',
    );
    expect(new Date(newYorkTimeToMs('2026-11-02', '09:30')).toISOString()).toBe(
      '2026-11-02T14:30:00.000Z',
    );
    expect(new Date(newYorkTimeToMs('2026-03-08', '03:00')).toISOString()).toBe(
      '2026-03-08T07:00:00.000Z',
    );
    expect(new Date(newYorkTimeToMs('2026-11-02', '09:29:59.5')).toISOString()).toBe(
      '2026-11-02T14:29:59.500Z',
    );
  });

  it('assigns the New York date, not the UTC date, to late evening events', () => {
    expect(tradingDateOf(Date.parse('2026-11-25T00:30:00Z'))).toBe('2026-11-24');
    expect(tradingDateOf(Date.parse('2026-11-25T05:00:00Z'))).toBe('2026-11-25');
    expect(tradingDateOf(Date.parse('2026-07-01T03:59:59Z'))).toBe('2026-06-30');
    expect(tradingDateOf(Date.parse('2026-07-01T04:00:00Z'))).toBe('2026-07-01');
  });

  it('tells the session of a moment', () => {
    expect(sessionAt(Date.parse('2026-11-24T08:59:59Z'))).toBe('closed');
    expect(sessionAt(Date.parse('2026-11-24T09:00:00Z'))).toBe('pre');
    expect(sessionAt(Date.parse('2026-11-24T14:29:59.999Z'))).toBe('pre');
    expect(sessionAt(Date.parse('2026-11-24T14:30:00Z'))).toBe('regular');
    expect(sessionAt(Date.parse('2026-11-24T21:00:00Z'))).toBe('post');
    expect(sessionAt(Date.parse('2026-11-25T01:00:00Z'))).toBe('closed');
    expect(sessionAt(Date.parse('2026-11-27T18:30:00Z'))).toBe('post');
    expect(sessionAt(Date.parse('2026-11-26T15:00:00Z'))).toBe('closed');
  });

  it('steps over weekends and holidays to the previous and next trading dates', () => {
    expect(previousTradingDate('2026-11-27')).toBe('2026-11-25');
    expect(previousTradingDate('2025-01-10')).toBe('2025-01-08');
    expect(previousTradingDate('2026-01-05')).toBe('2026-01-02');
    expect(nextTradingDate('2026-12-24')).toBe('2026-12-28');
    expect(nextTradingDate('2027-07-02')).toBe('2027-07-06');
  });

  it('rejects malformed dates and times', () => {
    expect(() => tradingDay('2026/11/24')).toThrow(/YYYY-MM-DD/);
    expect(() => newYorkTimeToMs('2026-11-24', '9:30')).toThrow(/HH:MM/);
  });
});
