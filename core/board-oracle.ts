import { isExactNotional, notionalUnits } from './notional.ts';
import type { BoardRow, BoardsView } from './board-store.ts';
import { tradingDateOf } from './calendar.ts';
import type { BoardOptions } from './config.ts';
import type { MarketEvent } from './events.ts';
import { BOARD_NAMES, type BoardName } from './names.ts';

interface SymbolState {
  e?: number;
  av?: number;
  c?: number;
  openKey?: [number, number];
  op?: number;
  tn: number;
  tv: number;
  tf?: number;
  trades: [t: number, units: number][];
}

const later = (e1: number, av1: number, e2: number | undefined, av2: number | undefined): boolean =>
  e2 === undefined || av2 === undefined || e1 > e2 || (e1 === e2 && av1 > av2);

/**
 * The boards of DESIGN.md section 4 computed offline, in one pass over every event, with none of
 * the pipeline's machinery: the reference that live boards must equal (tests, the lab's check).
 */
export function computeBoards(
  events: Iterable<MarketEvent>,
  date: string,
  prevCloses: ReadonlyMap<string, number>,
  options: Pick<BoardOptions, 'windowMs' | 'momentumMinHistoryMs' | 'top'>,
): BoardsView {
  const symbols = new Map<string, SymbolState>();
  const stateOf = (sym: string): SymbolState => {
    let state = symbols.get(sym);
    if (state === undefined) symbols.set(sym, (state = { tn: 0, tv: 0, trades: [] }));
    return state;
  };
  let end = -Infinity;
  for (const event of events) {
    if (event.ev === 'A' || event.ev === 'AM') {
      const { e, av, c, op } = event;
      if (
        e === undefined ||
        av === undefined ||
        c === undefined ||
        tradingDateOf(event.s ?? e) !== date
      )
        continue;
      const state = stateOf(event.sym);
      if (later(e, av, state.e, state.av)) Object.assign(state, { e, av, c });
      if (op !== undefined && op > 0 && later(e, av, state.openKey?.[0], state.openKey?.[1]))
        Object.assign(state, { op, openKey: [e, av] });
    } else if (event.ev === 'T') {
      const { p, s, t } = event;
      if (p === undefined || s === undefined || t === undefined || tradingDateOf(t) !== date)
        continue;
      // Dropped by the decoder and the analyzers' check alike.
      if (!isExactNotional(p, s)) continue;
      const state = stateOf(event.sym);
      const units = notionalUnits(p, s);
      state.tn++;
      state.tv += units;
      state.tf = Math.min(state.tf ?? t, t);
      state.trades.push([t, units]);
      end = Math.max(end, t);
    }
  }
  const cutoff = end - options.windowMs;
  const scores: Record<BoardName, [string, number][]> = {
    gappers: [],
    gainers: [],
    volume: [],
    trades: [],
    momentum: [],
  };
  for (const [sym, s] of symbols) {
    if (s.c !== undefined && s.av !== undefined) {
      scores.volume.push([sym, s.av]);
      const prev = prevCloses.get(sym);
      if (prev !== undefined && prev > 0) scores.gappers.push([sym, ((s.c - prev) / prev) * 100]);
      if (s.op !== undefined && s.op > 0) scores.gainers.push([sym, ((s.c - s.op) / s.op) * 100]);
    }
    const inWindow = s.trades.filter(([t]) => t > cutoff);
    if (inWindow.length === 0) continue;
    scores.trades.push([sym, inWindow.length]);
    const wv = inWindow.reduce((sum, [, units]) => sum + units, 0);
    if (s.tf !== undefined && s.tv > 0 && end - s.tf >= options.momentumMinHistoryMs) {
      const td = (end - s.tf) / 1000;
      scores.momentum.push([sym, wv / ((s.tv * (options.windowMs / 1000)) / td)]);
    }
  }
  const row = (sym: string, score: number): BoardRow => {
    const s = symbols.get(sym);
    return { sym, score: 0 - (0 - score), price: s?.c ?? null, volume: s?.av ?? null };
  };
  const boards = Object.fromEntries(
    BOARD_NAMES.map((name) => [
      name,
      scores[name]
        .sort(([a, x], [b, y]) => y - x || (a < b ? -1 : a > b ? 1 : 0))
        .slice(0, options.top)
        .map(([sym, score]) => row(sym, score)),
    ]),
  ) as Record<BoardName, BoardRow[]>;
  return { date, boards };
}
