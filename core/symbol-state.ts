import type { Redis } from 'ioredis';
import { Unpackr } from 'msgpackr';
import { NOTIONAL_UNITS_PER_DOLLAR } from './notional.ts';
import type { Names } from './names.ts';

/**
 * Decodes the per-symbol state arrays the board scripts write. Lua's msgpack writes integers of
 * 2^32 and more (bar times in ms, notional units) as 64-bit; they are read as numbers, not BigInt.
 */
export const stateUnpackr = new Unpackr({ int64AsType: 'number' });

/** One symbol's live state on a trading date, as the feed's `symbol:<SYM>` channel shows it. */
export interface SymbolState {
  sym: string;
  date: string;
  /** Close of the latest bar. */
  price: number | null;
  /** Accumulated volume of the latest bar. */
  volume: number | null;
  /** Official open, once a bar carried it. */
  open: number | null;
  prevClose: number | null;
  /** Change from the open, %. */
  changePct: number | null;
  /** Change from the previous close, %. */
  gapPct: number | null;
  /** End of the latest bar, epoch ms. */
  barEndMs: number | null;
  /** Trades and notional ($) of the day so far. */
  trades: number;
  notional: number;
  /** Trades and notional ($) in the sliding window. */
  windowTrades: number;
  windowNotional: number;
  /** Time of the symbol's first trade of the day, epoch ms. */
  firstTradeMs: number | null;
}

/**
 * Reads the state of `syms` on `date` (two HMGETs): the array lua/apply.lua keeps per
 * symbol (`e, av, c, oe, oav, op, tn, tv, tf, wn, wv`), with the previous close beside it.
 */
export async function readSymbolStates(
  redis: Redis,
  names: Names,
  date: string,
  syms: readonly string[],
): Promise<SymbolState[]> {
  if (syms.length === 0) return [];
  const [values, closes] = await Promise.all([
    redis.hmgetBuffer(names.states(date), ...syms),
    redis.hmget(names.prevClose(date), ...syms),
  ]);
  return syms.map((sym, n) => {
    const raw = values[n];
    const st = raw === null || raw === undefined ? [] : unpackState(raw);
    const num = (i: number): number | null => (typeof st[i] === 'number' ? st[i] : null);
    const price = num(2);
    const open = num(5);
    const close = closes[n] === null || closes[n] === undefined ? null : Number(closes[n]);
    const prevClose = close !== null && Number.isFinite(close) && close > 0 ? close : null;
    const pct = (base: number | null): number | null =>
      price === null || base === null || base <= 0 ? null : round(((price - base) / base) * 100);
    return {
      sym,
      date,
      price,
      volume: num(1),
      open,
      prevClose,
      changePct: pct(open),
      gapPct: pct(prevClose),
      barEndMs: num(0),
      trades: num(6) ?? 0,
      notional: (num(7) ?? 0) / NOTIONAL_UNITS_PER_DOLLAR,
      windowTrades: num(9) ?? 0,
      windowNotional: (num(10) ?? 0) / NOTIONAL_UNITS_PER_DOLLAR,
      firstTradeMs: num(8),
    };
  });
}

/** A state array, or none when the value is not one (it then reads as a symbol without data). */
function unpackState(raw: Buffer): unknown[] {
  try {
    const value: unknown = stateUnpackr.unpack(raw);
    return Array.isArray(value) ? value : [];
  } catch {
    return []; // Not msgpack: the scripts never write such a value; show no data rather than fail.
  }
}

const round = (value: number): number => Math.round(value * 1000) / 1000;
