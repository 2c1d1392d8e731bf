import { describe, expect, it } from 'vitest';
import { prepareBatch, prepareGroup } from './board-prepare.ts';
import { notionalUnits } from './notional.ts';

const OPEN = Date.parse('2026-11-24T14:30:00Z');

describe('prepareBatch', () => {
  it('keeps per symbol the bar with the greatest (e, av) and the greatest one carrying op', () => {
    const out = prepareBatch([
      { ev: 'A', sym: 'AAPL', s: OPEN, e: OPEN + 1000, av: 10, c: 1, op: 0.9 },
      { ev: 'A', sym: 'AAPL', s: OPEN + 1000, e: OPEN + 2000, av: 20, c: 2 },
      { ev: 'AM', sym: 'AAPL', s: OPEN, e: OPEN + 2000, av: 15, c: 3 },
    ]);
    expect(out.dates).toHaveLength(1);
    expect(out.dates[0]!.aggregateRecords).toEqual([
      'AAPL',
      OPEN + 2000,
      20,
      2,
      OPEN + 1000,
      10,
      0.9,
    ]);
    expect(out.dates[0]!.aggregates).toBe(3);
  });

  it('sums trades per symbol, and per run of one symbol at one time, with integer notional', () => {
    const out = prepareBatch([
      { ev: 'T', sym: 'F', t: OPEN + 5, p: 12.34, s: 100 },
      { ev: 'T', sym: 'BRK.B', t: OPEN + 5, p: 1, s: 3 },
      { ev: 'T', sym: 'F', t: OPEN + 5, p: 12.35, s: 0.5 },
      { ev: 'T', sym: 'F', t: OPEN + 1, p: 12.3, s: 10 },
      { ev: 'T', sym: 'F', t: OPEN + 1, p: 12.3, s: 1 },
    ]);
    const part = out.dates[0]!;
    const units = [
      notionalUnits(12.34, 100),
      notionalUnits(12.35, 0.5),
      notionalUnits(12.3, 10),
      notionalUnits(12.3, 1),
    ];
    expect(units).toEqual([12_340_000, 61_750, 1_230_000, 123_000]);
    const [u0, u1, u2, u3] = units as [number, number, number, number];
    expect(part.tradeRecords).toEqual([
      'F',
      4,
      u0 + u1 + u2 + u3,
      OPEN + 1,
      'BRK.B',
      1,
      30_000,
      OPEN + 5,
    ]);
    // A run (the two trades at OPEN + 1) is one entry; F's other trades at OPEN + 5 are apart.
    expect(part.windowRecords).toEqual([
      OPEN + 5,
      `F|1|${u0};BRK.B|1|30000;F|1|${u1}`,
      OPEN + 1,
      `F|2|${u2 + u3}`,
    ]);
    expect(part.windowTimes).toBe(2);
    expect(part.maxTradeMs).toBe(OPEN + 5);
  });

  it('prepares a group of batches as their events together', () => {
    const events = [
      { ev: 'T', sym: 'F', t: OPEN + 5, p: 12.34, s: 100 },
      { ev: 'A', sym: 'F', s: OPEN, e: OPEN + 1000, av: 10, c: 1 },
      { ev: 'T', sym: 'F', t: OPEN + 5, p: 12.35, s: 1 },
      { ev: 'Q', sym: 'F' },
      { ev: 'T', sym: 'G', t: OPEN + 6, p: 2, s: 1 },
    ] as const;
    const group = prepareGroup([
      { events: events.slice(0, 2) },
      { events: [] },
      { events: events.slice(2) },
    ]);
    expect(group).toEqual(prepareBatch(events));
    expect(group.ignored).toBe(1);
  });

  it('splits a batch at the New York midnight and ignores what cannot move a board', () => {
    const lateEvening = Date.parse('2026-11-25T04:59:59Z');
    const out = prepareBatch([
      { ev: 'T', sym: 'X', t: lateEvening, p: 1, s: 1 },
      { ev: 'T', sym: 'X', t: lateEvening + 1000, p: 1, s: 1 },
      { ev: 'T', sym: 'X', p: 1 },
      { ev: 'A', sym: 'X', e: OPEN, c: 1 },
      { ev: 'Q', sym: 'X', bp: 1 },
    ]);
    expect(out.dates.map((d) => d.date)).toEqual(['2026-11-24', '2026-11-25']);
    expect(out.ignored).toBe(3);
  });
});
