import { readFileSync } from 'node:fs';
import type { Redis } from 'ioredis';
import { pack } from 'msgpackr';
import type { EventBatch } from './batch.ts';
import {
  dateOfEvent,
  emptyPart,
  ledgerDateOf,
  prepareGroup,
  type PreparedDate,
} from './board-prepare.ts';
import type { BoardOptions } from './config.ts';
import { BOARD_NAMES, type BoardName, type Names } from './names.ts';
import { stateUnpackr } from './symbol-state.ts';

/** One row of a published board. */
export interface BoardRow {
  sym: string;
  score: number;
  /** Close of the symbol's latest bar (`null` before its first bar). */
  price: number | null;
  /** Accumulated volume of the symbol's latest bar (`null` before its first bar). */
  volume: number | null;
}

/** Every board of a trading date, top N rows each: the shape `openbell boards --json` prints. */
export interface BoardsView {
  date: string;
  boards: Record<BoardName, BoardRow[]>;
}

/**
 * A batch as the analyzers apply it: decoded, with the count of its events their check dropped as
 * malformed (accounted in the ledger with the batch, exactly once).
 */
export interface LedgerBatch extends EventBatch {
  /** Events of the batch as published that the analyzer's check dropped. @default 0 */
  malformed?: number;
}

/** A trading date's ledger in Redis, as {@link BoardStore.ledger} reads it. */
export interface DateLedger {
  /** Events of the batches accounted on the date, applied exactly once (ignored ones included). */
  applied: number;
  /** Events dropped after the listener, by `<stage>/<reason>` (`broker/expired`, …). */
  dropped: Record<string, number>;
}

/** What applying one batch did. */
export interface ApplyResult {
  /** Batches (per trading date they touch) skipped because their id was applied before. */
  duplicates: number;
  /** Batches (per trading date they touch) applied. */
  applied: number;
  aggregates: number;
  trades: number;
  /** Events that cannot move a board (see `prepareBatch`). */
  ignored: number;
  /** Trading dates the batch touched. */
  dates: string[];
  /** Events of the batches this call accounted in the ledger as applied (each batch once, ever). */
  appliedEvents: number;
  /** Events of the batches this call found accounted before (redeliveries, resent copies). */
  duplicateEvents: number;
}

/** Options of {@link createBoardStore}. */
export interface BoardStoreOptions {
  redis: Redis;
  names: Names;
  board: Pick<BoardOptions, 'windowMs' | 'momentumMinHistoryMs' | 'top'>;
  /** How long a trading date's keys live after their last update. @default 4 days */
  retentionMs?: number;
}

/** The boards in Redis: applying batches, previous closes, momentum refresh and reads. */
export interface BoardStore {
  /** Applies a batch exactly once per trading date (a redelivered batch id changes nothing). */
  applyBatch(batch: EventBatch): Promise<ApplyResult>;
  /**
   * Applies several batches in one script call per trading date, each exactly once: a hot symbol
   * is then read and written once per group instead of once per batch.
   */
  applyBatches(batches: readonly LedgerBatch[]): Promise<ApplyResult>;
  /**
   * Accounts one batch the broker dead-lettered in its date's ledger (see `ledgerDateOf`): once,
   * and not at all when the analyzers applied another copy of it. Returns whether it counted.
   */
  countDeadLetter(batch: EventBatch, reason: string, events: number): Promise<boolean>;
  /** The ledger of `date`: events applied and dropped after the listener, each counted once. */
  ledger(date: string): Promise<DateLedger>;
  /** Stores previous closes for `date` and ranks gappers for symbols that already trade. */
  setPrevCloses(date: string, closes: ReadonlyMap<string, number>): Promise<number>;
  /** Recomputes the momentum board at the current window end; returns its size. */
  refreshMomentum(date: string): Promise<number>;
  /**
   * Reads the top `top` rows of every board. Momentum is as last refreshed, or, with
   * `freshMomentum`, computed now at the current window end without writing anything.
   */
  readBoards(
    date: string,
    top?: number,
    options?: { freshMomentum?: boolean },
  ): Promise<BoardsView>;
  /** The newest trading date any analyzer applied data for. */
  latestDate(): Promise<string | undefined>;
  /** Symbols with a price but no previous close on `date`. */
  missingPrevCloses(date: string): Promise<number>;
  /** Board version of `date`: bumped by every batch that changed a board. */
  version(date: string): Promise<number>;
  /** Aggregates and trades of `date` applied so far, by every analyzer together (each once). */
  applied(date: string): Promise<{ aggregates: number; trades: number }>;
}

const lua = (file: string): string => readFileSync(new URL(`lua/${file}`, import.meta.url), 'utf8');
const APPLY = lua('apply.lua');
const REFRESH = lua('refresh.lua');
const PREV_CLOSE = lua('prev-close.lua');
const DEAD = lua('dead.lua');
// Store the newest date string (YYYY-MM-DD compares correctly as text).
const SET_LATEST =
  "local cur = redis.call('GET', KEYS[1]) if not cur or ARGV[1] > cur then redis.call('SET', KEYS[1], ARGV[1]) end return 1";

type ScriptRedis = Redis & {
  openbellApply(...args: (string | Buffer)[]): Promise<[number, number | string[]]>;
  openbellRefresh(...args: string[]): Promise<number | string[]>;
  openbellPrevClose(...args: string[]): Promise<number>;
  openbellSetLatest(key: string, date: string): Promise<number>;
  openbellDead(...args: string[]): Promise<number>;
};

/** Creates the board store on a connected ioredis client (scripts are loaded once, then called by SHA). */
export function createBoardStore(options: BoardStoreOptions): BoardStore {
  const { names, board } = options;
  const retention = String(options.retentionMs ?? 4 * 86_400_000);
  const redis = options.redis as ScriptRedis;
  if (typeof redis.openbellApply !== 'function') {
    redis.defineCommand('openbellApply', { numberOfKeys: 12, lua: APPLY });
    redis.defineCommand('openbellDead', { numberOfKeys: 3, lua: DEAD });
    redis.defineCommand('openbellRefresh', { numberOfKeys: 4, lua: REFRESH });
    redis.defineCommand('openbellPrevClose', { numberOfKeys: 4, lua: PREV_CLOSE });
    redis.defineCommand('openbellSetLatest', { numberOfKeys: 1, lua: SET_LATEST });
  }
  const latestSeen = { date: '' };

  /**
   * Runs the apply script for one date over `batches` (those with events on the date, and those
   * accounted on it in the ledger); returns the ids it refused as applied before.
   */
  const applyPart = async (
    part: PreparedDate,
    batches: readonly LedgerBatch[],
  ): Promise<string[]> => {
    const d = part.date;
    const ledger: (string | number)[] = [];
    for (const batch of batches) {
      if (ledgerDateOf(batch) === d)
        ledger.push(batch.id, batch.events.length, batch.malformed ?? 0);
    }
    const [applied, detail] = await redis.openbellApply(
      names.appliedBatches(d),
      names.market(d),
      names.windowTrades(d),
      names.prevClose(d),
      names.noPrevClose(d),
      names.board(d, 'gappers'),
      names.board(d, 'gainers'),
      names.board(d, 'volume'),
      names.board(d, 'trades'),
      names.states(d),
      names.ledger(d),
      names.deadBatches(d),
      batches.map((b) => b.id).join(','),
      String(board.windowMs),
      retention,
      String(part.aggregateSymbols),
      String(part.tradeSymbols),
      part.maxTradeMs === undefined ? '' : String(part.maxTradeMs),
      String(part.aggregates),
      String(part.trades),
      String(part.windowTimes),
      // Numbers travel as msgpack numbers: no string parsing or interning in the script.
      pack([part.aggregateRecords, part.tradeRecords, part.windowRecords]),
      pack(ledger),
    );
    return applied === 1 ? [] : (detail as string[]);
  };

  /** Events of the batches among `batches` accounted on `date`. */
  const ledgerEvents = (batches: readonly LedgerBatch[], date: string): number => {
    let events = 0;
    for (const batch of batches) if (ledgerDateOf(batch) === date) events += batch.events.length;
    return events;
  };

  /** Applies the parts of `group` on `date`, dropping batches the script says were applied before. */
  const applyDate = async (
    date: string,
    group: readonly LedgerBatch[],
    result: ApplyResult,
  ): Promise<void> => {
    let batches = group;
    for (;;) {
      const accounted = batches.some((b) => ledgerDateOf(b) === date);
      const part =
        prepareGroup(batches).dates.find((p) => p.date === date) ??
        (accounted ? emptyPart(date) : undefined);
      if (part === undefined) return;
      const refused = new Set(await applyPart(part, batches));
      if (refused.size === 0) {
        result.applied += batches.length;
        result.aggregates += part.aggregates;
        result.trades += part.trades;
        result.appliedEvents += ledgerEvents(batches, date);
        return;
      }
      result.duplicates += refused.size;
      result.duplicateEvents += ledgerEvents(
        batches.filter((b) => refused.has(b.id)),
        date,
      );
      batches = batches.filter((b) => !refused.has(b.id));
    }
  };

  const applyBatches = async (group: readonly LedgerBatch[]): Promise<ApplyResult> => {
    const unique = [...new Map(group.map((b) => [b.id, b])).values()];
    const prepared = prepareGroup(unique);
    const result: ApplyResult = {
      duplicates: group.length - unique.length,
      applied: 0,
      aggregates: 0,
      trades: 0,
      ignored: prepared.ignored,
      dates: prepared.dates.map((p) => p.date),
      appliedEvents: 0,
      duplicateEvents: 0,
    };
    const accountedOn = new Map(unique.map((b) => [b, ledgerDateOf(b)]));
    const dates = [...new Set([...result.dates, ...accountedOn.values()])].sort();
    if (dates.length === 1 && prepared.dates.length === 1) {
      // The common case: one date, one script call for the whole group.
      const [part] = prepared.dates;
      const refused = await applyPart(part!, unique);
      if (refused.length === 0) {
        Object.assign(result, {
          applied: unique.length,
          aggregates: part!.aggregates,
          trades: part!.trades,
          appliedEvents: ledgerEvents(unique, part!.date),
        });
      } else {
        result.duplicates += refused.length;
        result.duplicateEvents += ledgerEvents(
          unique.filter((b) => refused.includes(b.id)),
          part!.date,
        );
        await applyDate(
          part!.date,
          unique.filter((b) => !refused.includes(b.id)),
          result,
        );
      }
    } else {
      for (const date of dates) {
        await applyDate(
          date,
          unique.filter(
            (b) => accountedOn.get(b) === date || b.events.some((e) => dateOfEvent(e) === date),
          ),
          result,
        );
      }
    }
    for (const date of result.dates) {
      if (date > latestSeen.date) {
        latestSeen.date = date;
        await redis.openbellSetLatest(names.latestDate, date);
      }
    }
    return result;
  };

  const countDeadLetter = async (
    batch: EventBatch,
    reason: string,
    events: number,
  ): Promise<boolean> => {
    const date = ledgerDateOf(batch);
    const counted = await redis.openbellDead(
      names.appliedBatches(date),
      names.ledger(date),
      names.deadBatches(date),
      batch.id,
      reason,
      String(events),
      retention,
    );
    return counted === 1;
  };

  const ledger = async (date: string): Promise<DateLedger> => {
    const fields = await redis.hgetall(names.ledger(date));
    const dropped: Record<string, number> = {};
    for (const [field, value] of Object.entries(fields)) {
      if (field !== 'applied' && Number(value) !== 0) dropped[field] = Number(value);
    }
    return { applied: Number(fields['applied'] ?? 0), dropped };
  };

  const setPrevCloses = async (
    date: string,
    closes: ReadonlyMap<string, number>,
  ): Promise<number> => {
    const pairs = [...closes].filter(([, close]) => Number.isFinite(close) && close > 0);
    for (let i = 0; i < pairs.length; i += 1000) {
      const args = pairs.slice(i, i + 1000).flatMap(([sym, close]) => [sym, String(close)]);
      await redis.openbellPrevClose(
        names.prevClose(date),
        names.noPrevClose(date),
        names.board(date, 'gappers'),
        names.states(date),
        retention,
        ...args,
      );
    }
    return pairs.length;
  };

  const momentumArgs = (date: string, mode: 'read' | 'write'): string[] => [
    names.market(date),
    names.board(date, 'trades'),
    names.board(date, 'momentum'),
    names.states(date),
    String(board.windowMs),
    String(board.momentumMinHistoryMs),
    retention,
    mode,
  ];

  const refreshMomentum = async (date: string): Promise<number> =>
    (await redis.openbellRefresh(...momentumArgs(date, 'write'))) as number;

  /** Momentum computed now, without writing: `[sym, negated score]` pairs as stored. */
  const momentumNow = async (date: string, top: number): Promise<string[]> => {
    const pairs = (await redis.openbellRefresh(...momentumArgs(date, 'read'))) as string[];
    const rows: [string, number][] = [];
    for (let i = 0; i < pairs.length; i += 2) rows.push([pairs[i + 1]!, Number(pairs[i])]);
    rows.sort(([a, x], [b, y]) => x - y || (a < b ? -1 : a > b ? 1 : 0));
    return rows.slice(0, top).flatMap(([sym, score]) => [sym, String(score)]);
  };

  const readBoards = async (
    date: string,
    top = board.top,
    options: { freshMomentum?: boolean } = {},
  ): Promise<BoardsView> => {
    const pipeline = redis.pipeline();
    for (const name of BOARD_NAMES)
      pipeline.zrange(names.board(date, name), 0, top - 1, 'WITHSCORES');
    const ranked = (await pipeline.exec()) ?? [];
    const fresh = options.freshMomentum === true ? await momentumNow(date, top) : undefined;
    const lists = BOARD_NAMES.map((name, n) => {
      const [error, flat] = ranked[n] ?? [null, []];
      if (error) throw error;
      const pairs = name === 'momentum' && fresh !== undefined ? fresh : (flat as string[]);
      const rows: { sym: string; score: number }[] = [];
      // Scores are stored negated (see lua/apply.lua); `0 - x` turns them back without a -0.
      for (let i = 0; i < pairs.length; i += 2)
        rows.push({ sym: pairs[i]!, score: 0 - Number(pairs[i + 1]) });
      return rows;
    });
    const symbols = [...new Set(lists.flat().map((r) => r.sym))];
    const values =
      symbols.length === 0 ? [] : await redis.hmgetBuffer(names.states(date), ...symbols);
    const quote = new Map<string, [number | null, number | null]>();
    const number = (value: unknown): number | null => (typeof value === 'number' ? value : null);
    symbols.forEach((sym, n) => {
      const raw = values[n];
      // The state array of lua/apply.lua: e, av, c, … (false where unknown).
      const state =
        raw === null || raw === undefined ? [] : (stateUnpackr.unpack(raw) as unknown[]);
      quote.set(sym, [number(state[2]), number(state[1])]);
    });
    const boards = Object.fromEntries(
      BOARD_NAMES.map((name, n) => [
        name,
        lists[n]!.map(({ sym, score }) => ({
          sym,
          score,
          price: quote.get(sym)![0],
          volume: quote.get(sym)![1],
        })),
      ]),
    ) as Record<BoardName, BoardRow[]>;
    return { date, boards };
  };

  return {
    applyBatch: (batch) => applyBatches([batch]),
    applyBatches,
    countDeadLetter,
    ledger,
    setPrevCloses,
    refreshMomentum,
    readBoards,
    latestDate: async () => (await redis.get(names.latestDate)) ?? undefined,
    missingPrevCloses: (date) => redis.scard(names.noPrevClose(date)),
    version: async (date) => Number((await redis.hget(names.market(date), 'version')) ?? 0),
    applied: async (date) => {
      const [aggregates, trades] = await redis.hmget(
        names.market(date),
        'appliedAggregates',
        'appliedTrades',
      );
      return { aggregates: Number(aggregates ?? 0), trades: Number(trades ?? 0) };
    },
  };
}
