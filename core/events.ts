/**
 * The normalised event model of the Massive stocks WebSocket feed. Field names follow the wire
 * (so Massive's documentation reads straight onto them) with three normalisations: the ticker is
 * always `sym` (LULD and NOI send it as `T`), every timestamp is epoch milliseconds (the wire
 * mixes ms, µs and ns), and decimal-string sizes (`ds`, `dv`, `dav`) become numbers in
 * `s`, `v` and `av`. Every field but `ev` and `sym` is optional: Massive omits fields freely.
 */

/** Event types of the stocks feed that openbell decodes. */
export const EVENT_TYPES = ['A', 'AM', 'T', 'Q', 'LULD', 'NOI', 'FMV'] as const;

/** One of {@link EVENT_TYPES}; also the RabbitMQ routing key of the event. */
export type EventType = (typeof EVENT_TYPES)[number];

/** Per-second (`A`) or per-minute (`AM`) aggregate bar. */
export interface AggregateEvent {
  ev: 'A' | 'AM';
  sym: string;
  /** Volume of this bar. */
  v?: number;
  /** Accumulated volume of the day. */
  av?: number;
  /** Official opening price of the day, once known. */
  op?: number;
  /** Volume-weighted average price of this bar. */
  vw?: number;
  o?: number;
  c?: number;
  h?: number;
  l?: number;
  /** Volume-weighted average price of the day. */
  a?: number;
  /** Average trade size of this bar. */
  z?: number;
  /** Bar start, epoch ms. */
  s?: number;
  /** Bar end, epoch ms. */
  e?: number;
  otc?: boolean;
}

/** A trade print. */
export interface TradeEvent {
  ev: 'T';
  sym: string;
  /** Exchange id; 4 is off-exchange (TRF). */
  x?: number;
  /** Trade id. */
  i?: string;
  /** Tape: 1 NYSE, 2 AMEX, 3 Nasdaq. */
  z?: number;
  p?: number;
  /** Size in shares (fractional when the wire sent `ds`). */
  s?: number;
  /** Condition codes; omitted for regular trades. */
  c?: number[];
  /** SIP time, epoch ms. */
  t?: number;
  /** Per-symbol sequence number: increasing, with gaps. */
  q?: number;
  trfi?: number;
  /** TRF time, epoch ms. */
  trft?: number;
}

/** A NBBO quote. */
export interface QuoteEvent {
  ev: 'Q';
  sym: string;
  bx?: number;
  bp?: number;
  bs?: number;
  ax?: number;
  ap?: number;
  as?: number;
  c?: number;
  i?: number[];
  t?: number;
  q?: number;
  z?: number;
}

/** Limit Up-Limit Down price band. */
export interface LuldEvent {
  ev: 'LULD';
  sym: string;
  /** Upper band. */
  h?: number;
  /** Lower band. */
  l?: number;
  i?: number[];
  z?: number;
  t?: number;
  q?: number;
}

/** Net order imbalance. */
export interface ImbalanceEvent {
  ev: 'NOI';
  sym: string;
  t?: number;
  /** Auction time, HHMM. */
  at?: number;
  /** Auction type. */
  a?: string;
  i?: number;
  x?: number;
  /** Imbalance quantity. */
  o?: number;
  /** Paired quantity. */
  p?: number;
  /** Book clearing price. */
  b?: number;
}

/** Fair market value (Business plans). */
export interface FairValueEvent {
  ev: 'FMV';
  sym: string;
  fmv?: number;
  t?: number;
}

/** Any market event of the stocks feed. */
export type MarketEvent =
  AggregateEvent | TradeEvent | QuoteEvent | LuldEvent | ImbalanceEvent | FairValueEvent;

/** Status values the Massive server sends. Others may appear and are kept as strings. */
export type KnownStatus =
  | 'connected'
  | 'success'
  | 'auth_success'
  | 'auth_failed'
  | 'auth_timeout'
  | 'auth_required'
  | 'error'
  | 'max_connections'
  | 'slow_consumer'
  | 'force_disconnect';

/** A status message (`ev: "status"`): connection, auth, subscription or disconnect news. */
export interface StatusMessage {
  ev: 'status';
  status: KnownStatus | (string & {});
  message?: string;
}

/** Statuses after which the server closes the connection. */
export const DISCONNECT_STATUSES: ReadonlySet<string> = new Set([
  'auth_failed',
  'auth_timeout',
  'max_connections',
  'slow_consumer',
  'force_disconnect',
]);
