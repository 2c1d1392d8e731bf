import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  ConfigError,
  computeBoards,
  decodeFrame,
  newYorkTimeToMs,
  typeBit,
  type AggregateEvent,
  type MarketEvent,
  type TradeEvent,
} from '../core/index.ts';
import { synthesize, type SynthOptions } from './synth.ts';

const SMALL: SynthOptions = {
  symbols: 300,
  from: '09:29:30',
  to: '09:31:00',
  premarketTradesPerSec: 100,
  peakTradesPerSec: 4000,
  baselineTradesPerSec: 1500,
  burstDecaySec: 20,
};
const recording = synthesize(SMALL);
const date = recording.meta.date;
const openMs = newYorkTimeToMs(date, '09:30');
const frames = [...recording.frames()];
const events: MarketEvent[] = frames.flatMap((frame) => decodeFrame(frame.data).events);
const trades = events.filter((e): e is TradeEvent => e.ev === 'T');
const bars = (ev: 'A' | 'AM'): AggregateEvent[] =>
  events.filter((e): e is AggregateEvent => e.ev === ev);

function digest(options: SynthOptions): string {
  const hash = createHash('sha256');
  for (const frame of synthesize(options).frames())
    hash.update(`${frame.timeUs}:`).update(frame.data);
  return hash.digest('hex');
}

/** Trades of each symbol, in time order. */
const bySymbol = new Map<string, TradeEvent[]>();
for (const trade of trades) {
  const list = bySymbol.get(trade.sym);
  if (list === undefined) bySymbol.set(trade.sym, [trade]);
  else list.push(trade);
}

const key = (bar: AggregateEvent): string => `${bar.sym}@${bar.s}`;

/** The bars of every `windowMs` window as the trades define them, keyed `sym@start`. */
function barsFromTrades(windowMs: number): Map<string, AggregateEvent & { n: number; pv: number }> {
  const out = new Map<string, AggregateEvent & { n: number; pv: number }>();
  for (const [sym, list] of bySymbol) {
    let av = 0;
    let dayPv = 0;
    let op: number | undefined;
    for (const { t, p, s: size } of list) {
      const s = Math.floor(t! / windowMs) * windowMs;
      if (op === undefined && t! >= openMs) op = p;
      av += size!;
      dayPv += p! * size!;
      const bar = out.get(`${sym}@${s}`) ?? {
        ev: 'A',
        sym,
        v: 0,
        n: 0,
        pv: 0,
        o: p,
        h: p,
        l: p,
        s,
      };
      bar.h = Math.max(bar.h!, p!);
      bar.l = Math.min(bar.l!, p!);
      Object.assign(bar, {
        v: bar.v! + size!,
        n: bar.n + 1,
        pv: bar.pv + p! * size!,
        c: p,
        av,
        op,
      });
      Object.assign(bar, { a: dayPv / av, e: s + windowMs });
      out.set(`${sym}@${s}`, bar);
    }
  }
  return out;
}

/** True when a sent bar carries what its trades say (averages to their 4 decimals). */
function matches(bar: AggregateEvent, want: AggregateEvent & { n: number; pv: number }): boolean {
  const near = (x: number | undefined, y: number): boolean => Math.abs(x! - y) <= 0.00005 + 1e-9;
  return (
    (['v', 'av', 'op', 'o', 'c', 'h', 'l', 's', 'e'] as const).every((f) => bar[f] === want[f]) &&
    bar.z === Math.round(want.v! / want.n) &&
    near(bar.vw, want.pv / want.v!) &&
    near(bar.a, want.a!)
  );
}

describe('synthesize', () => {
  it('synthesize gives the same bytes for the same seed, and other bytes for another', () => {
    const first = digest(SMALL);
    expect(digest(SMALL)).toBe(first);
    expect(digest({ ...SMALL, seed: 2 })).not.toBe(first);
  });

  it('synthesize writes wire frames: JSON arrays of 1–100 events, typed, in receive order', () => {
    const bad = frames.filter((frame, k) => {
      const parsed = JSON.parse(frame.data.toString('utf8')) as { ev: string }[];
      return (
        !Array.isArray(parsed) ||
        parsed.length !== frame.events ||
        frame.events < 1 ||
        frame.events > 100 ||
        frame.types !== parsed.reduce((mask, e) => mask | typeBit(e.ev), 0) ||
        !Number.isInteger(frame.timeUs) ||
        frame.timeUs < (frames[k - 1]?.timeUs ?? -Infinity)
      );
    });
    expect(bad).toEqual([]);
    expect(frames.reduce((sum, f) => sum + f.events, 0)).toBe(events.length);
    expect(frames.some((f) => f.events > 20)).toBe(true);
  });

  it('synthesize decodes cleanly, with valid trades', () => {
    const issues = frames.flatMap((frame) => decodeFrame(frame.data).issues);
    expect(issues).toEqual([]);
    const onTick = (p: number): boolean =>
      p === (p >= 1 ? Math.round(p * 100) / 100 : Math.round(p * 10_000) / 10_000);
    const badTrades = trades.filter(
      (t) =>
        !(t.x! >= 1 && t.x! <= 21) ||
        ![1, 2, 3].includes(t.z!) ||
        !onTick(t.p!) ||
        !(Number.isInteger(t.s) && t.s! > 0) ||
        t.c?.length === 0 ||
        typeof t.i !== 'string',
    );
    expect(badTrades).toEqual([]);
    expect(trades.some((t) => t.x === 4)).toBe(true);
    expect(trades.some((t) => t.c === undefined)).toBe(true);
    expect(trades.some((t) => t.s! % 100 !== 0)).toBe(true);
    for (const list of bySymbol.values()) {
      expect(new Set(list.map((t) => t.i)).size).toBe(list.length);
      const disorder = list.filter(
        (t, k) => k > 0 && (t.q! <= list[k - 1]!.q! || t.t! < list[k - 1]!.t!),
      );
      expect(disorder).toEqual([]);
    }
  });

  it('synthesize bursts at the open: ≥ 10× the pre-market rate, peaking early, then decaying', () => {
    const perSecond = new Map<number, number>();
    for (const t of trades) {
      const second = Math.floor((t.t! - openMs) / 1000);
      perSecond.set(second, (perSecond.get(second) ?? 0) + 1);
    }
    const rate = (second: number): number => perSecond.get(second) ?? 0;
    const mean = (from: number, to: number): number => {
      let sum = 0;
      for (let s = from; s < to; s++) sum += rate(s);
      return sum / (to - from);
    };
    const pre = mean(-30, 0);
    expect(pre).toBeGreaterThan(0);
    for (let s = 0; s < 5; s++) expect(rate(s)).toBeGreaterThanOrEqual(10 * pre);
    const peak = [...perSecond.keys()].reduce((a, b) => (rate(b) > rate(a) ? b : a));
    expect(peak).toBeGreaterThanOrEqual(0);
    expect(peak).toBeLessThanOrEqual(5);
    expect(mean(45, 60)).toBeLessThan(0.7 * mean(1, 6));
  });

  it('synthesize sends A bars consistent with the trades of their second, op only after the open', () => {
    const aggregates = bars('A');
    const expected = barsFromTrades(1000);
    expect(aggregates.length).toBeGreaterThan(100);
    expect(aggregates.map(key).sort()).toEqual([...expected.keys()].sort());
    expect(aggregates.filter((bar) => !matches(bar, expected.get(key(bar))!))).toEqual([]);
    expect(aggregates.some((bar) => bar.e! <= openMs)).toBe(true);
    expect(aggregates.some((bar) => bar.op !== undefined)).toBe(true);
    const lastAv = new Map<string, number>();
    for (const bar of aggregates) {
      expect(bar.av).toBeGreaterThanOrEqual(lastAv.get(bar.sym) ?? 0);
      lastAv.set(bar.sym, bar.av!);
    }
  });

  it('synthesize sends AM bars for the full minutes, consistent with their trades', () => {
    const minuteBars = bars('AM');
    const expected = barsFromTrades(60_000);
    const full = [...expected.keys()].filter((k) => expected.get(k)!.s! >= openMs);
    expect(minuteBars.length).toBeGreaterThan(50);
    expect(minuteBars.map(key).sort()).toEqual(full.sort());
    expect(minuteBars.filter((bar) => !matches(bar, expected.get(key(bar))!))).toEqual([]);
  });

  it('synthesize opens each symbol with its first regular trade, a few of them late', () => {
    const openings = new Map<string, TradeEvent>();
    for (const [sym, list] of bySymbol) {
      const prints = list.filter((t) => t.c?.includes(17));
      expect(prints.length).toBeLessThanOrEqual(1);
      if (prints[0] !== undefined) {
        expect(list.find((t) => t.t! >= openMs)).toBe(prints[0]);
        openings.set(sym, prints[0]);
      }
      expect(list.filter((t) => (t.c?.includes(12) ?? false) !== t.t! < openMs)).toEqual([]);
    }
    const delays = [...openings.values()].map((t) => t.t! - openMs);
    expect(delays.filter((d) => d < 3000).length).toBeGreaterThan(10);
    expect(delays.some((d) => d >= 5000 && d <= 60_000)).toBe(true);
  });

  it('synthesize feeds non-empty boards, with traded symbols that lack a previous close', () => {
    const prevCloses = new Map(Object.entries(recording.meta.prevClose));
    const { boards } = computeBoards(events, date, prevCloses, {
      windowMs: 60_000,
      momentumMinHistoryMs: 300_000,
      top: 20,
    });
    for (const name of ['gappers', 'gainers', 'volume', 'trades'] as const)
      expect(boards[name].length, name).toBeGreaterThan(0);
    expect(boards.gappers.some((row) => Math.abs(row.score) >= 10)).toBe(true);
    expect(trades.some((t) => !prevCloses.has(t.sym))).toBe(true);
  });

  it('synthesize names unique tickers and gives ~1% of them no previous close', () => {
    const { meta } = synthesize({ symbols: 2000, to: '09:26' });
    const names = Object.keys(meta.prevClose);
    expect(names.length).toBe(1980);
    for (const name of names) expect(name).toMatch(/^[A-Z]{1,5}(\.[A-Z])?$/);
    expect(names.some((name) => name.includes('.'))).toBe(true);
    const prices = Object.values(meta.prevClose);
    expect(Math.min(...prices)).toBeGreaterThanOrEqual(1);
    expect(Math.max(...prices)).toBeLessThanOrEqual(500);
    expect(meta.synth).toMatchObject({ symbols: 2000, from: '09:25', to: '09:26', seed: 1 });
  });

  it('synthesize rejects bad options, naming the field', () => {
    const bad: [SynthOptions, RegExp][] = [
      [{ date: '2026-13-01' }, /synth\.date/],
      [{ date: '23/11/2026' }, /synth\.date/],
      [{ date: '2026-11-26' }, /not a trading date/],
      [{ date: '2026-11-22' }, /not a trading date/],
      [{ from: '09:40', to: '09:30' }, /synth\.from: must be before/],
      [{ from: '09:30', to: '09:30' }, /synth\.from: must be before/],
      [{ from: '03:59' }, /synth\.from/],
      [{ to: '16:01' }, /synth\.to/],
      [{ to: '24:00' }, /synth\.to/],
      [{ symbols: 0 }, /synth\.symbols/],
      [{ symbols: 1.5 }, /synth\.symbols/],
      [{ seed: -1 }, /synth\.seed/],
      [{ moverShare: 2 }, /synth\.moverShare/],
      [{ peakTradesPerSec: Number.NaN }, /synth\.peakTradesPerSec/],
      [{ nonsense: 1 } as SynthOptions, /synth/],
    ];
    for (const [options, message] of bad) {
      expect(() => synthesize(options), JSON.stringify(options)).toThrow(ConfigError);
      expect(() => synthesize(options), JSON.stringify(options)).toThrow(message);
    }
  });
});
