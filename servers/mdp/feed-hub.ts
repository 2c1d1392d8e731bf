import { trace } from '@opentelemetry/api';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { z } from 'zod';
import {
  BOARD_NAMES,
  readSymbolStates,
  type BoardName,
  type BoardRow,
  type BoardUpdate,
  type FeedChannel,
  contextFromHeaders,
  type LinkRing,
  type Names,
} from '../../core/index.ts';

/**
 * Everyone on one instance and tick slice watching one channel (and, for a board, the same top N):
 * they share the view last sent, so one diff and one JSON serialisation serve them all.
 */
export interface FeedGroup<S> {
  /** Its subscribers' tick slice (FeedLimits.slices): the group is brought up to date at its tick. */
  readonly slice: number;
  readonly channel: string;
  readonly spec: FeedChannel;
  readonly top: number;
  readonly subscribers: Set<S>;
  /** `data` of a snapshot of the view last sent (undefined until a symbol is first read). */
  snapshot: string | undefined;
  /** `data` of the update made by the last tick that changed this group. */
  update: string | undefined;
  /** Board view last sent, or symbol state JSON last sent. */
  rows: BoardRow[];
  version: number;
  date: string | undefined;
}

/** Options of {@link createFeedHub}. */
export interface FeedHubOptions {
  /** Reads: boards, symbol states, versions. */
  redis: Redis;
  /** A dedicated connection for pub/sub. */
  subscriber: Redis;
  names: Names;
  log: Logger;
  /** Collects the trace context of traced board updates, for the ticks that send them. */
  traces?: Pick<LinkRing, 'add'>;
  /** Told how long each {@link FeedHub.readDate} or {@link FeedHub.readSymbols} took (ms). */
  onRedisRead?(ms: number): void;
}

/** The feed's view of Redis: the newest boards (from pub/sub) and the subscribed symbols. */
export interface FeedHub<S> {
  start(): Promise<void>;
  close(): Promise<void>;
  /** The group for a channel and top N in a slice, created (and its snapshot made) on first use. */
  join(
    spec: FeedChannel,
    channel: string,
    top: number,
    subscriber: S,
    slice?: number,
  ): Promise<FeedGroup<S>>;
  leave(group: FeedGroup<S>, subscriber: S): void;
  /**
   * Reads the newest trading date from Redis, and the published boards when it changed or pub/sub
   * was lost; forgets the states of symbols nobody watches any more.
   */
  readDate(): Promise<void>;
  /**
   * Reads the state of every symbol watched in `slices`: what their next ticks send. Resolves
   * false when there was nothing to read.
   */
  readSymbols(slices: readonly number[]): Promise<boolean>;
  /**
   * Brings a slice's groups up to date from memory (the boards from pub/sub, the symbols from the
   * last reads); returns those whose `update` is new. It never waits on Redis.
   */
  tick(slice?: number): FeedGroup<S>[];
  readonly date: string | undefined;
  readonly stats: {
    boardMessages: number;
    /** Pub/sub messages that were not board updates (dropped). */
    badMessages: number;
    reloads: number;
    symbolReads: number;
  };
}

interface LatestBoard {
  rows: BoardRow[];
  version: number;
}

/**
 * Creates the hub. Boards come from the analyzers' conflated pub/sub updates (and the `published`
 * hash when the date changes or the subscription was lost); symbols from {@link FeedHub.readSymbols}.
 */
export function createFeedHub<S>(options: FeedHubOptions): FeedHub<S> {
  const { redis, subscriber, names, log } = options;
  /** Groups by slice, then by {@link groupKey}. */
  const slices = new Map<number, Map<string, FeedGroup<S>>>();
  let latest = new Map<BoardName, LatestBoard>();
  /** A date being switched to: its boards, filled by pub/sub while its published hash is read. */
  let next: { date: string; latest: Map<BoardName, LatestBoard> } | undefined;
  /** The last read state of each subscribed symbol (of the current date), as JSON. */
  const symbolStates = new Map<string, string>();
  const stats = { boardMessages: 0, badMessages: 0, reloads: 0, symbolReads: 0 };
  let date: string | undefined;
  let reload = true;

  /** Keeps `rows` as `board`'s unless `boards` has a newer version. */
  const merge = (
    boards: Map<BoardName, LatestBoard>,
    board: BoardName,
    rows: BoardRow[],
    version: number,
  ): void => {
    const known = boards.get(board);
    if (known === undefined || version >= known.version) boards.set(board, { rows, version });
  };

  subscriber.on('message', (_channel: string, message: string) => {
    const update = parseUpdate(message);
    if (update === undefined) {
      // Anyone who can PUBLISH on the channel can send anything: drop it, count it, go on.
      stats.badMessages++;
      // Logged at 1, 10, 100…: visible, never a flood.
      if (Number.isInteger(Math.log10(stats.badMessages)))
        log.warn(
          { badMessages: stats.badMessages },
          'pub/sub message is not a board update: dropped',
        );
      return;
    }
    stats.boardMessages++;
    const { traceparent, tracestate } = update;
    options.traces?.add(trace.getSpanContext(contextFromHeaders({ traceparent, tracestate })));
    if (update.date === date) merge(latest, update.board, update.rows, update.version);
    else if (update.date === next?.date)
      merge(next.latest, update.board, update.rows, update.version);
  });
  // A lost subscription may have missed updates: read the published boards again.
  subscriber.on('ready', () => {
    reload = true;
  });

  /**
   * Follows the newest trading date. A new date's boards are read (subscribed first, so nothing
   * published meanwhile is lost) before the hub switches to it, all at once: a tick never sees a
   * new date without its boards. A failed read leaves the old date in place for the next try.
   */
  const loadDate = async (): Promise<void> => {
    const newest = (await redis.get(names.latestDate)) ?? undefined;
    if (newest === undefined || (newest === date && !reload)) return;
    if (newest !== date && next?.date !== newest) {
      // A date given up on before its switch (it changed again): nobody needs its updates.
      if (next !== undefined)
        void subscriber.unsubscribe(names.boardUpdates(next.date)).catch(() => undefined);
      next = { date: newest, latest: new Map() };
    }
    const boards = newest === date ? latest : next!.latest;
    if (newest !== date)
      await withTimeout(subscriber.subscribe(names.boardUpdates(newest)), 'SUBSCRIBE');
    // Cleared first: a subscription lost during the read sets it again.
    reload = false;
    let published: Record<string, string>;
    try {
      published = await redis.hgetall(names.published(newest));
    } catch (error) {
      reload = true;
      throw error;
    }
    stats.reloads++;
    // The date moves with the first batch applied to it, its boards with the next publication:
    // until one is published (or arrives by pub/sub), the old date's boards stay.
    if (newest !== date && published['version'] === undefined && boards.size === 0) {
      reload = true;
      return;
    }
    const version = Number(published['version'] ?? 0);
    // A pub/sub update that arrived during the read may be newer than the hash: it stays.
    for (const board of BOARD_NAMES)
      merge(boards, board, parseRows(published[board]) ?? [], version);
    if (newest === date) return;
    const previous = date;
    date = newest;
    latest = boards;
    next = undefined;
    symbolStates.clear();
    // Not awaited: an UNSUBSCRIBE on a lost line could wait forever.
    if (previous !== undefined)
      void subscriber.unsubscribe(names.boardUpdates(previous)).catch(() => undefined);
  };

  const boardData = (group: FeedGroup<S>, rows: readonly BoardRow[], order?: string[]): string =>
    JSON.stringify({
      date: group.date ?? null,
      version: group.version,
      top: group.top,
      rows,
      ...(order === undefined ? {} : { order }),
    });

  /** Moves a board group to the newest rows; true when something it shows changed. */
  const refreshBoard = (group: FeedGroup<S>, board: BoardName): boolean => {
    const newest = latest.get(board) ?? { rows: [], version: 0 };
    const rows = newest.rows.slice(0, group.top);
    const before = new Map(group.rows.map((row) => [row.sym, row]));
    const changed = rows.filter((row) => !sameRow(before.get(row.sym), row));
    const sameOrder =
      rows.length === group.rows.length && rows.every((row, n) => row.sym === group.rows[n]!.sym);
    if (changed.length === 0 && sameOrder && group.date === date) return false;
    group.rows = rows;
    group.version = newest.version;
    group.date = date;
    group.snapshot = boardData(group, rows);
    group.update =
      changed.length >= rows.length
        ? boardData(
            group,
            rows,
            rows.map((row) => row.sym),
          )
        : boardData(
            group,
            changed,
            rows.map((row) => row.sym),
          );
    return true;
  };

  /** Reads the states of `syms` (of the current date) into {@link symbolStates}. */
  const readStates = async (syms: string[]): Promise<void> => {
    if (date === undefined || syms.length === 0) return;
    const readFor = date;
    const states = await readSymbolStates(redis, names, readFor, syms);
    stats.symbolReads += syms.length;
    // A date that changed during the read leaves the states of the old one out.
    if (date !== readFor) return;
    syms.forEach((sym, n) => symbolStates.set(sym, JSON.stringify(states[n])));
  };

  /** Moves a symbol group to the last read state; true when it changed. */
  const refreshSymbol = (group: FeedGroup<S>, sym: string): boolean => {
    const json = symbolStates.get(sym);
    if (json === undefined || json === group.snapshot) return false;
    group.snapshot = json;
    group.update = json;
    group.date = date;
    return true;
  };

  /** The symbols subscribed in the slices `which`. */
  const watchedSymbols = (which: Iterable<number>): Set<string> => {
    const syms = new Set<string>();
    for (const slice of which)
      for (const group of slices.get(slice)?.values() ?? [])
        if (group.spec.kind === 'symbol') syms.add(group.spec.sym);
    return syms;
  };

  return {
    async start() {
      await loadDate();
    },
    async close() {
      // The caller disconnects the subscriber: an UNSUBSCRIBE could wait forever on a lost line.
      slices.clear();
      return Promise.resolve();
    },
    async join(spec, channel, top, member, slice = 0) {
      const key = groupKey(spec, channel, top);
      let groups = slices.get(slice);
      if (groups === undefined) slices.set(slice, (groups = new Map<string, FeedGroup<S>>()));
      let group = groups.get(key);
      if (group === undefined) {
        group = {
          slice,
          channel,
          spec,
          top,
          subscribers: new Set(),
          snapshot: undefined,
          update: undefined,
          rows: [],
          version: 0,
          date: undefined,
        };
        groups.set(key, group);
        if (spec.kind === 'board') {
          refreshBoard(group, spec.board);
          group.snapshot ??= boardData(group, group.rows);
        }
      }
      if (group.snapshot === undefined && spec.kind === 'symbol') {
        try {
          if (!symbolStates.has(spec.sym)) await readStates([spec.sym]);
          refreshSymbol(group, spec.sym);
        } catch (error) {
          // Nobody joined: a group without members must not stay and be read every tick.
          if (group.subscribers.size === 0) groups.delete(key);
          throw error;
        }
        group.snapshot ??= JSON.stringify(emptySymbol(spec.sym));
      }
      // A member only once its snapshot exists: a failed join leaves nothing behind.
      group.subscribers.add(member);
      return group;
    },
    leave(group, member) {
      group.subscribers.delete(member);
      if (group.subscribers.size === 0) {
        slices.get(group.slice)?.delete(groupKey(group.spec, group.channel, group.top));
      }
    },
    async readDate() {
      const startedAt = performance.now();
      await loadDate();
      const syms = watchedSymbols(slices.keys());
      for (const sym of symbolStates.keys()) if (!syms.has(sym)) symbolStates.delete(sym);
      options.onRedisRead?.(performance.now() - startedAt);
    },
    async readSymbols(wanted) {
      const syms = watchedSymbols(wanted);
      if (syms.size === 0 || date === undefined) return false;
      const startedAt = performance.now();
      await readStates([...syms]);
      options.onRedisRead?.(performance.now() - startedAt);
      return true;
    },
    tick(slice = 0) {
      const changed: FeedGroup<S>[] = [];
      for (const group of slices.get(slice)?.values() ?? []) {
        const spec = group.spec;
        const moved =
          spec.kind === 'symbol' ? refreshSymbol(group, spec.sym) : refreshBoard(group, spec.board);
        if (moved) changed.push(group);
      }
      return changed;
    },
    get date() {
      return date;
    },
    stats,
  };
}

/** Longest a feed's Redis call may take before it fails (and the next read may start). */
export const READ_TIMEOUT_MS = 5000;

/**
 * `promise`, or a rejection once it has taken {@link READ_TIMEOUT_MS}. For the subscriber
 * connection, where ioredis's own `commandTimeout` would also reject its resubscribe after a
 * reconnect, a promise nothing catches.
 */
async function withTimeout<T>(promise: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`${what} took over ${READ_TIMEOUT_MS} ms`)),
      READ_TIMEOUT_MS,
    );
  });
  try {
    return await Promise.race([promise, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

/** Boards are grouped per channel and top N; a symbol's state is the same for everyone. */
const groupKey = (spec: FeedChannel, channel: string, top: number): string =>
  spec.kind === 'board' ? `${channel}|${top}` : channel;

const sameRow = (a: BoardRow | undefined, b: BoardRow): boolean =>
  a !== undefined && a.score === b.score && a.price === b.price && a.volume === b.volume;

const emptySymbol = (sym: string) => ({
  sym,
  date: null,
  price: null,
  volume: null,
  open: null,
  prevClose: null,
  changePct: null,
  gapPct: null,
  barEndMs: null,
  trades: 0,
  notional: 0,
  windowTrades: 0,
  windowNotional: 0,
  firstTradeMs: null,
});

const rowSchema = z.object({
  sym: z.string(),
  score: z.number(),
  price: z.number().nullable(),
  volume: z.number().nullable(),
});
const updateSchema = z.object({
  date: z.string(),
  board: z.enum(BOARD_NAMES),
  version: z.number(),
  publishedAtMs: z.number(),
  rows: z.array(rowSchema),
  traceparent: z.string().max(256).optional(),
  tracestate: z.string().max(512).optional(),
});

function parseUpdate(message: string): BoardUpdate | undefined {
  try {
    const result = updateSchema.safeParse(JSON.parse(message));
    return result.success ? result.data : undefined;
  } catch {
    return undefined;
  }
}

function parseRows(json: string | undefined): BoardRow[] | undefined {
  if (json === undefined) return undefined;
  try {
    const result = z.array(rowSchema).safeParse(JSON.parse(json));
    return result.success ? result.data : undefined;
  } catch {
    return undefined;
  }
}
