import { ConfigError } from './errors.ts';

/** Options of {@link createNames}. */
export interface NamesOptions {
  /**
   * First segment of every Redis key, queue and exchange name; lets several environments (or
   * test runs) share one Redis and one RabbitMQ vhost.
   * @default 'openbell'
   */
  namespace?: string;
}

/** Board names, in display order. */
export const BOARD_NAMES = ['gappers', 'gainers', 'volume', 'trades', 'momentum'] as const;

/** One of {@link BOARD_NAMES}. */
export type BoardName = (typeof BOARD_NAMES)[number];

/**
 * Every Redis key, pub/sub channel, RabbitMQ exchange and queue name openbell uses, built in one
 * place. Keys are `<ns>:<entity>:{<date>}:<id>`: the trading date makes a new day new keys (no
 * reset at the open), and as the Redis Cluster hash tag it keeps every key one per-batch script
 * touches in one slot.
 */
export interface Names {
  readonly namespace: string;
  /** Sorted set of one board for a trading date. */
  board(date: string, board: BoardName): string;
  /**
   * Hash of every symbol's state for a trading date: field the symbol, value a msgpack array
   * `[e, av, c, oe, oav, op, tn, tv, tf, wn, wv]` (false where unknown), read and written whole by
   * the board scripts. One hash rather than a key per symbol: a script then reads and writes a
   * group's symbols with one HMGET and one HSET, about a third less of Redis's work per event.
   */
  states(date: string): string;
  /** Sorted set of trades inside the sliding window, scored by trade time, to expire them. */
  windowTrades(date: string): string;
  /** Hash of market-wide state of a trading date: newest trade time, board version. */
  market(date: string): string;
  /** Set of symbols with a price but no previous close (left out of gappers). */
  noPrevClose(date: string): string;
  /** Lock that lets one analyzer at a time publish a date's board updates. */
  publishLock(date: string): string;
  /** Hash of the digest of each board as last published, for conflation across analyzers. */
  published(date: string): string;
  /** String key: the newest trading date any analyzer has applied data for. */
  readonly latestDate: string;
  /**
   * Hash marking the namespace's state in Redis (core/state-guard.ts): a random `epoch` set when
   * the state starts and a `seq` every guard increments; its loss or a step back is a state loss.
   */
  readonly stateMarker: string;
  /** Hash of previous closes (symbol → price) that serve a trading date. */
  prevClose(date: string): string;
  /** Set of batch ids already applied on a trading date (exactly-once under redelivery). */
  appliedBatches(date: string): string;
  /**
   * Hash of the ledger of a trading date: `applied` (events of the batches accounted on the date,
   * applied exactly once) and `<stage>/<reason>` events dropped after the listener (e.g.
   * `broker/expired`, `analyzer/malformed`).
   */
  ledger(date: string): string;
  /** Hash of the batches of a trading date the broker dead-lettered: id → `reason|events`. */
  deadBatches(date: string): string;
  /** Pub/sub channel of conflated board updates for a trading date. */
  boardUpdates(date: string): string;
  /** Durable topic exchange the listener publishes event batches to. */
  readonly exchange: string;
  /** Queue of one consumer group (e.g. `analyzers`). */
  queue(group: string): string;
  /** Pattern matching every key of the namespace, for inspection and cleanup. */
  readonly keyPattern: string;
}

const DATE = /^\d{4}-\d{2}-\d{2}$/;
const NAMESPACE = /^[a-z][a-z0-9_-]{0,63}$/;

/** Creates the name builder for a namespace; rejects identifiers that would break a key's shape. */
export function createNames(options: NamesOptions = {}): Names {
  const ns = options.namespace ?? 'openbell';
  if (!NAMESPACE.test(ns)) {
    throw new ConfigError('namespace', `must match ${NAMESPACE.source}, got ${JSON.stringify(ns)}`);
  }
  const key = (entity: string, date: string, id?: string): string => {
    assertDate(date);
    if (id === undefined) return `${ns}:${entity}:{${date}}`;
    assertIdentifier(id);
    return `${ns}:${entity}:{${date}}:${id}`;
  };
  return {
    namespace: ns,
    board: (date, board) => key('board', date, board),
    states: (date) => key('state', date),
    windowTrades: (date) => key('window', date),
    market: (date) => key('market', date),
    noPrevClose: (date) => key('noprev', date),
    publishLock: (date) => key('lock', date, 'publish'),
    published: (date) => key('published', date),
    latestDate: `${ns}:latest-date`,
    stateMarker: `${ns}:state-marker`,
    prevClose: (date) => key('prevclose', date),
    appliedBatches: (date) => key('batches', date),
    ledger: (date) => key('ledger', date),
    deadBatches: (date) => key('dead', date),
    boardUpdates: (date) => key('updates', date),
    exchange: `${ns}.events`,
    queue: (group) => {
      assertIdentifier(group);
      return `${ns}.${group}`;
    },
    keyPattern: `${ns}:*`,
  };
}

/** Throws unless `date` is a `YYYY-MM-DD` string. */
export function assertDate(date: string): void {
  if (!DATE.test(date))
    throw new ConfigError('date', `must be YYYY-MM-DD, got ${JSON.stringify(date)}`);
}

/** Throws when an identifier could alter a key's shape: empty, `:`, braces, `*` or whitespace. */
export function assertIdentifier(id: string): void {
  if (id.length === 0 || /[:{}*?\s[\]]/.test(id)) {
    throw new ConfigError(
      'identifier',
      `must be non-empty without ':', braces, wildcards or spaces, got ${JSON.stringify(id)}`,
    );
  }
}
