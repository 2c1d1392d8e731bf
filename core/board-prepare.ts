import { tradingDateOf } from './calendar.ts';

const HOUR_MS = 3_600_000;
import type { AggregateEvent, MarketEvent, TradeEvent } from './events.ts';
import { notionalUnits } from './notional.ts';

/** The records of one group of batches for one trading date, in the layout `lua/apply.lua` reads. */
export interface PreparedDate {
  date: string;
  /** Per symbol: sym, e, av, c, then oe, oav, op of the newest bar carrying op (zeros without). */
  aggregateRecords: (string | number)[];
  aggregateSymbols: number;
  /** Per symbol: sym, count, units, first t. */
  tradeRecords: (string | number)[];
  tradeSymbols: number;
  /**
   * Per distinct trade time: the time, then its `sym|count|units` entries joined by `;` (a
   * symbol may have several at one time: the script sums them). The window's expiry entries, and
   * what the script reads when part of a group is already outside it.
   */
  windowRecords: (string | number)[];
  windowTimes: number;
  /** Newest trade time of this part of the batch, epoch ms; `undefined` without trades. */
  maxTradeMs: number | undefined;
  aggregates: number;
  trades: number;
}

/** A batch reduced per trading date and symbol, ready for one script call per date. */
export interface PreparedBatch {
  dates: PreparedDate[];
  /** Events that cannot move a board: bars without `e`, `av` or `c`; trades without `p`, `s` or `t`; other types. */
  ignored: number;
}

interface BarPick {
  best: { e: number; av: number; c: number };
  open?: { e: number; av: number; op: number };
}

interface TradePick {
  count: number;
  units: number;
  firstMs: number;
}

interface DateParts {
  bars: Map<string, BarPick>;
  trades: Map<string, TradePick>;
  /**
   * Per trade time, its window entries (`sym|count|units`). A run of trades of one symbol at one
   * time (a sweep across venues) makes one entry; the script sums a symbol's entries either way.
   */
  byTime: Map<number, string[]>;
  /** The run being summed: its time, symbol, count and units (count 0: none). */
  runTime: number;
  runSym: string;
  runCount: number;
  runUnits: number;
  /** The entries of the time last written to, and that time. */
  entries: string[];
  entriesTime: number;
  maxTradeMs: number | undefined;
  aggregates: number;
  tradeCount: number;
}

/** The trading date an event counts for: a bar's start (or end), a trade's time; else undefined. */
export function dateOfEvent(
  event: MarketEvent,
  dateOf: (ms: number) => string = tradingDateOf,
): string | undefined {
  if (event.ev === 'T') return event.t === undefined ? undefined : dateOf(event.t);
  if (event.ev === 'A' || event.ev === 'AM') {
    const at = event.s ?? event.e;
    return at === undefined ? undefined : dateOf(at);
  }
  return undefined;
}

/**
 * The trading date a batch is accounted on in the ledger: that of its first event with a date,
 * else of its receive time. The analyzers (applying it) and the dead-letter count (when the broker
 * dropped it) compute it from the same batch, so both land in the same date's ledger.
 */
export function ledgerDateOf(
  batch: { events: readonly MarketEvent[]; receivedAtMs: number },
  dateOf: (ms: number) => string = tradingDateOf,
): string {
  for (const event of batch.events) {
    const date = dateOfEvent(event, dateOf);
    if (date !== undefined) return date;
  }
  return dateOf(batch.receivedAtMs);
}

/** A part with nothing for the boards: a date's script call that only accounts batches in the ledger. */
export function emptyPart(date: string): PreparedDate {
  return {
    date,
    aggregateRecords: [],
    aggregateSymbols: 0,
    tradeRecords: [],
    tradeSymbols: 0,
    windowRecords: [],
    windowTimes: 0,
    maxTradeMs: undefined,
    aggregates: 0,
    trades: 0,
  };
}

const later = (e1: number, av1: number, e2: number, av2: number): boolean =>
  e1 > e2 || (e1 === e2 && av1 > av2);

/**
 * Reduces a batch in the analyzer (off Redis): per trading date and symbol, the bar with the
 * greatest `(e, av)` and the greatest one carrying `op`; trades summed per symbol and per trade
 * time. What reaches Redis is then one small script call per date, whatever the batch held.
 */
export function prepareBatch(
  events: readonly MarketEvent[],
  dateOf: (ms: number) => string = tradingDateOf,
): PreparedBatch {
  return prepare([events], dateOf);
}

/** {@link prepareBatch} of a group's batches together, without first copying their events into one array. */
export function prepareGroup(
  batches: readonly { events: readonly MarketEvent[] }[],
): PreparedBatch {
  return prepare(
    batches.map((b) => b.events),
    tradingDateOf,
  );
}

function prepare(
  lists: readonly (readonly MarketEvent[])[],
  dateOf: (ms: number) => string,
): PreparedBatch {
  const parts = new Map<string, DateParts>();
  // New York's offset from UTC is a whole number of hours, so a trading date never changes
  // within a UTC hour: the last hour's part serves the next event of the same hour.
  const byHour = dateOf === tradingDateOf;
  let lastHour = Number.NaN;
  let lastPart: DateParts | undefined;
  const partOf = (ms: number): DateParts => {
    const hour = Math.floor(ms / HOUR_MS);
    if (byHour && hour === lastHour) return lastPart!;
    const date = dateOf(ms);
    let part = parts.get(date);
    if (part === undefined) {
      part = {
        bars: new Map(),
        trades: new Map(),
        byTime: new Map(),
        runTime: 0,
        runSym: '',
        runCount: 0,
        runUnits: 0,
        entries: [],
        entriesTime: Number.NaN,
        maxTradeMs: undefined,
        aggregates: 0,
        tradeCount: 0,
      };
      parts.set(date, part);
    }
    lastHour = hour;
    lastPart = part;
    return part;
  };
  let ignored = 0;
  for (const events of lists) {
    for (const event of events) {
      if (event.ev === 'T') {
        if (!addTrade(event, partOf)) ignored++;
      } else if (event.ev === 'A' || event.ev === 'AM') {
        if (!addBar(event, partOf)) ignored++;
      } else {
        ignored++;
      }
    }
  }
  return { dates: [...parts].map(([date, part]) => toArgs(date, part)), ignored };
}

function addBar(bar: AggregateEvent, partOf: (ms: number) => DateParts): boolean {
  const { e, av, c } = bar;
  if (e === undefined || av === undefined || c === undefined) return false;
  // An official open of 0 is no open: it must not hide an earlier real one.
  const op = bar.op !== undefined && bar.op > 0 ? bar.op : undefined;
  const part = partOf(bar.s ?? e);
  part.aggregates++;
  const pick = part.bars.get(bar.sym);
  if (pick === undefined) {
    part.bars.set(bar.sym, {
      best: { e, av, c },
      ...(op === undefined ? {} : { open: { e, av, op } }),
    });
    return true;
  }
  if (later(e, av, pick.best.e, pick.best.av)) pick.best = { e, av, c };
  if (op !== undefined && (pick.open === undefined || later(e, av, pick.open.e, pick.open.av)))
    pick.open = { e, av, op };
  return true;
}

function addTrade(trade: TradeEvent, partOf: (ms: number) => DateParts): boolean {
  const { p, s, t } = trade;
  if (p === undefined || s === undefined || t === undefined) return false;
  const part = partOf(t);
  part.tradeCount++;
  if (part.maxTradeMs === undefined || t > part.maxTradeMs) part.maxTradeMs = t;
  const units = notionalUnits(p, s);
  const pick = part.trades.get(trade.sym);
  if (pick === undefined) part.trades.set(trade.sym, { count: 1, units, firstMs: t });
  else {
    pick.count++;
    pick.units += units;
    if (t < pick.firstMs) pick.firstMs = t;
  }
  if (part.runCount > 0 && t === part.runTime && trade.sym === part.runSym) {
    part.runCount++;
    part.runUnits += units;
  } else {
    endRun(part);
    part.runTime = t;
    part.runSym = trade.sym;
    part.runCount = 1;
    part.runUnits = units;
  }
  return true;
}

/** Writes the run being summed as a window entry at its time. */
function endRun(part: DateParts): void {
  if (part.runCount === 0) return;
  const entry = `${part.runSym}|${part.runCount}|${part.runUnits}`;
  // Trades come in runs of one time too: its entries are kept at hand.
  if (part.entriesTime !== part.runTime) {
    let entries = part.byTime.get(part.runTime);
    if (entries === undefined) part.byTime.set(part.runTime, (entries = []));
    part.entriesTime = part.runTime;
    part.entries = entries;
  }
  part.entries.push(entry);
  part.runCount = 0;
}

function toArgs(date: string, part: DateParts): PreparedDate {
  endRun(part);
  const aggregateRecords: (string | number)[] = [];
  for (const [sym, { best, open }] of part.bars) {
    aggregateRecords.push(sym, best.e, best.av, best.c, open?.e ?? 0, open?.av ?? 0, open?.op ?? 0);
  }
  const tradeRecords: (string | number)[] = [];
  for (const [sym, pick] of part.trades)
    tradeRecords.push(sym, pick.count, pick.units, pick.firstMs);
  // The window's expiry entries, one per trade time, packed here rather than in the script.
  const windowRecords: (string | number)[] = [];
  for (const [t, entries] of part.byTime) windowRecords.push(t, entries.join(';'));
  return {
    date,
    aggregateRecords,
    aggregateSymbols: part.bars.size,
    tradeRecords,
    tradeSymbols: part.trades.size,
    windowRecords,
    windowTimes: part.byTime.size,
    maxTradeMs: part.maxTradeMs,
    aggregates: part.aggregates,
    trades: part.tradeCount,
  };
}
