import { isExactNotional } from './notional.ts';
import type { MarketEvent, StatusMessage } from './events.ts';
import { EVENT_TYPES, type EventType } from './events.ts';

/**
 * Why an input was dropped. Every reason is a metric label, so the set is closed and small.
 * Frame-level: `invalid_json`, `frame_not_array`. Event-level: the rest.
 */
export const DECODE_REASONS = [
  'invalid_json',
  'frame_not_array',
  'event_not_object',
  'missing_ev',
  'unknown_ev',
  'missing_symbol',
  'invalid_symbol',
  'invalid_field',
  'invalid_timestamp',
  'invalid_status',
  'batch_not_msgpack',
  'batch_invalid',
  'batch_version',
] as const;

/** One of {@link DECODE_REASONS}. */
export type DecodeReason = (typeof DECODE_REASONS)[number];

/**
 * A typed decode failure: returned, never thrown, so one bad event costs one counter increment
 * and not a stack trace.
 */
export interface DecodeIssue {
  reason: DecodeReason;
  /** Human-readable detail, e.g. the offending field. Never contains the whole input. */
  detail: string;
  /** Position of the offending event within its frame, when the issue is about one event. */
  index?: number;
}

/** Drop counters by reason, as kept by {@link createDecodeCounts}. */
export type DecodeCounts = Record<DecodeReason, number>;

/** Returns a zeroed counter for every decode reason. */
export function createDecodeCounts(): DecodeCounts {
  return Object.fromEntries(DECODE_REASONS.map((r) => [r, 0])) as DecodeCounts;
}

/** The result of decoding one WebSocket frame. */
export interface DecodedFrame {
  events: MarketEvent[];
  statuses: StatusMessage[];
  issues: DecodeIssue[];
}

/**
 * Decodes one Massive WebSocket frame (a JSON array mixing events and status messages).
 * Lenient on what may vary (missing optional fields, unknown fields, timestamp units), strict on
 * what must hold: each bad event becomes an issue and the rest of the frame is kept. When
 * `counts` is given, each issue is counted there by reason.
 */
export function decodeFrame(frame: string | Buffer, counts?: DecodeCounts): DecodedFrame {
  const out: DecodedFrame = { events: [], statuses: [], issues: [] };
  let parsed: unknown;
  try {
    parsed = JSON.parse(typeof frame === 'string' ? frame : frame.toString('utf8'));
  } catch (error) {
    out.issues.push({ reason: 'invalid_json', detail: (error as Error).message.slice(0, 120) });
  }
  if (out.issues.length === 0 && !Array.isArray(parsed)) {
    out.issues.push({ reason: 'frame_not_array', detail: `frame is ${describe(parsed)}` });
  }
  if (out.issues.length === 0) {
    const items = parsed as unknown[];
    for (let index = 0; index < items.length; index++) {
      const result = parseMessage(items[index]);
      if ('reason' in result) out.issues.push({ ...result, index });
      else if (result.ev === 'status') out.statuses.push(result);
      else out.events.push(result);
    }
  }
  if (counts !== undefined) for (const issue of out.issues) counts[issue.reason]++;
  return out;
}

/** Parses one element of a frame: a market event, a status message, or an issue. */
export function parseMessage(raw: unknown): MarketEvent | StatusMessage | DecodeIssue {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    return { reason: 'event_not_object', detail: `event is ${describe(raw)}` };
  }
  const record = raw as Record<string, unknown>;
  const ev = record['ev'];
  if (typeof ev !== 'string') return { reason: 'missing_ev', detail: 'no string "ev"' };
  if (ev === 'status') return parseStatus(record);
  const parse = PARSERS.get(ev);
  if (parse === undefined) {
    return { reason: 'unknown_ev', detail: `ev ${JSON.stringify(ev).slice(0, 24)}` };
  }
  return parse(record);
}

function parseStatus(record: Record<string, unknown>): StatusMessage | DecodeIssue {
  const status = record['status'];
  const message = record['message'];
  if (typeof status !== 'string') return { reason: 'invalid_status', detail: 'no string "status"' };
  if (message !== undefined && message !== null && typeof message !== 'string') {
    return { reason: 'invalid_status', detail: '"message" is not a string' };
  }
  return typeof message === 'string' ? { ev: 'status', status, message } : { ev: 'status', status };
}

/**
 * Tickers as Massive prints them (`AAPL`, `BRK.B`, `NTEST.Q`, `ZZK/WS`): no `:` (the Redis key
 * separator), no braces (Redis Cluster hash tags), no whitespace, no wildcard.
 */
const SYMBOL = /^[A-Za-z0-9][A-Za-z0-9._\-/^=+]{0,31}$/;
const DECIMAL = /^\d+(\.\d+)?$/;

/** Returns true when `sym` is a ticker openbell accepts. */
export function isValidSymbol(sym: string): boolean {
  return SYMBOL.test(sym);
}

/**
 * Field kinds: `price` finite ≥ 0; `int` safe integer; `str`; `bool`; `ints` integer array;
 * `ts` a timestamp normalised to epoch ms; `dec` a decimal string that fills another field.
 */
export type FieldKind = 'price' | 'int' | 'str' | 'bool' | 'ints' | 'ts';

/** How one event type travels on the wire and what {@link parseMessage} makes of it. */
export interface EventSpec {
  /** Wire name of the ticker field. */
  readonly ticker: 'sym' | 'T';
  readonly fields: readonly (readonly [name: string, kind: FieldKind])[];
  /** Decimal-string twins: wire name → the numeric field it fills (and wins over). */
  readonly decimals: readonly (readonly [wire: string, target: string])[];
  /** Trades: price × size must sum exactly on the boards (see {@link isExactNotional}). */
  readonly notional?: true;
}

const AGGREGATE: EventSpec = {
  ticker: 'sym',
  fields: [
    ['v', 'price'],
    ['av', 'price'],
    ['op', 'price'],
    ['vw', 'price'],
    ['o', 'price'],
    ['c', 'price'],
    ['h', 'price'],
    ['l', 'price'],
    ['a', 'price'],
    ['z', 'price'],
    ['s', 'ts'],
    ['e', 'ts'],
    ['otc', 'bool'],
  ],
  decimals: [
    ['dv', 'v'],
    ['dav', 'av'],
  ],
};

/**
 * Every event type's spec. {@link parseMessage} returns `{ ev, sym, ...fields }` in this field
 * order (absent fields `undefined`): the record layout batches carry.
 */
export const EVENT_SPECS: ReadonlyMap<string, EventSpec> = new Map<EventType, EventSpec>([
  ['A', AGGREGATE],
  ['AM', AGGREGATE],
  [
    'T',
    {
      ticker: 'sym',
      fields: [
        ['x', 'int'],
        ['i', 'str'],
        ['z', 'int'],
        ['p', 'price'],
        ['s', 'price'],
        ['c', 'ints'],
        ['t', 'ts'],
        ['q', 'int'],
        ['trfi', 'int'],
        ['trft', 'ts'],
      ],
      decimals: [['ds', 's']],
      notional: true,
    },
  ],
  [
    'Q',
    {
      ticker: 'sym',
      fields: [
        ['bx', 'int'],
        ['bp', 'price'],
        ['bs', 'price'],
        ['ax', 'int'],
        ['ap', 'price'],
        ['as', 'price'],
        ['c', 'int'],
        ['i', 'ints'],
        ['t', 'ts'],
        ['q', 'int'],
        ['z', 'int'],
      ],
      decimals: [],
    },
  ],
  [
    'LULD',
    {
      ticker: 'T',
      fields: [
        ['h', 'price'],
        ['l', 'price'],
        ['i', 'ints'],
        ['z', 'int'],
        ['t', 'ts'],
        ['q', 'int'],
      ],
      decimals: [],
    },
  ],
  [
    'NOI',
    {
      ticker: 'T',
      fields: [
        ['t', 'ts'],
        ['at', 'int'],
        ['a', 'str'],
        ['i', 'int'],
        ['x', 'int'],
        ['o', 'int'],
        ['p', 'int'],
        ['b', 'price'],
      ],
      decimals: [],
    },
  ],
  [
    'FMV',
    {
      ticker: 'sym',
      fields: [
        ['fmv', 'price'],
        ['t', 'ts'],
      ],
      decimals: [],
    },
  ],
]);

if (EVENT_SPECS.size !== EVENT_TYPES.length) throw new Error('decode: an event type has no spec');

type Issue = (reason: DecodeReason, detail: string) => DecodeIssue;
type EventParser = (record: Record<string, unknown>) => MarketEvent | DecodeIssue;

const issue: Issue = (reason, detail) => ({ reason, detail });

const lit = (value: string): string => JSON.stringify(value);

/**
 * Generated code checking one field's value `v` by kind. A `ts` check also normalises `v` to
 * epoch ms.
 */
const FIELD_CHECKS: Record<FieldKind, string> = {
  price: "typeof v === 'number' && v >= 0 && v !== Infinity",
  int: 'Number.isSafeInteger(v)',
  str: "typeof v === 'string'",
  bool: "typeof v === 'boolean'",
  ints: 'isInts(v)',
  ts: '(v = parseTimestampMs(v)) !== undefined',
};

/** Generated code reading the ticker into `sym` (with `read`), returning an issue when it is bad. */
const symbolCheck = (read: string, wireName: string): string[] => [
  `const sym = ${read};`,
  `if (typeof sym !== 'string' || sym.length === 0) return issue('missing_symbol', ${lit(`no string "${wireName}"`)});`,
  `if (!SYMBOL.test(sym)) return issue('invalid_symbol', 'symbol ' + JSON.stringify(sym.slice(0, 40)));`,
];

/** Generated code rejecting a trade whose notional cannot be summed exactly (read from `target`). */
const notionalCheck = (ev: EventType, spec: EventSpec, target: string): string[] =>
  spec.notional === true
    ? [
        `if (!isExactNotional(${target}.p, ${target}.s)) return issue('invalid_field', ${lit(`${ev}.p × ${ev}.s is too large to sum exactly`)});`,
      ]
    : [];

/** Builds a generated event function named `name` from its body lines, with what they call. */
function compile(name: string, body: readonly string[]): EventParser {
  // eslint-disable-next-line @typescript-eslint/no-implied-eval -- the code is built from the static specs above, never from input
  const factory = new Function(
    'issue',
    'SYMBOL',
    'DECIMAL',
    'parseTimestampMs',
    'isInts',
    'isExactNotional',
    `'use strict'; return function ${name}(r) {\n${body.join('\n')}\n};`,
  ) as (...deps: unknown[]) => EventParser;
  return factory(issue, SYMBOL, DECIMAL, parseTimestampMs, isInts, isExactNotional);
}

/**
 * Compiles the parser of one event type from its spec. Generated code, because measurement says
 * so: a table-driven loop (keyed loads and stores over varying shapes) validated ~2.5x slower, and
 * zod no faster than that loop (`npm run bench`, decode suite). The output has one fixed shape
 * per type (absent fields are `undefined`), which also gives msgpackr one record per type.
 */
function compileParser(ev: EventType, spec: EventSpec): EventParser {
  const names = [...spec.fields.map(([name]) => name), ...spec.decimals.map(([wire]) => wire)];
  if (!names.every((name) => /^[a-z]+$/i.test(name)))
    throw new Error(`decode: bad field name in ${ev}`);
  return compile(`parse${ev}`, [
    ...symbolCheck(`r[${lit(spec.ticker)}] ?? r.sym`, spec.ticker),
    `const out = { ev: ${lit(ev)}, sym, ${spec.fields.map(([name]) => `${name}: undefined`).join(', ')} };`,
    'let v;',
    ...spec.fields.map(
      ([name, kind]) =>
        `v = r.${name}; if (v !== undefined && v !== null) { if (!(${FIELD_CHECKS[kind]})) return issue(${lit(kind === 'ts' ? 'invalid_timestamp' : 'invalid_field')}, ${lit(`${ev}.${name} is not a valid ${kind}`)}); out.${name} = v; }`,
    ),
    ...spec.decimals.map(
      ([wire, target]) =>
        `v = r.${wire}; if (v !== undefined && v !== null) { if (typeof v !== 'string' || !DECIMAL.test(v) || !Number.isFinite((v = Number(v)))) return issue('invalid_field', ${lit(`${ev}.${wire} is not a finite decimal string`)}); out.${target} = v; }`,
    ),
    ...notionalCheck(ev, spec, 'out'),
    'return out;',
  ]);
}

const PARSERS: ReadonlyMap<string, EventParser> = new Map(
  [...EVENT_SPECS].map(([ev, spec]) => [ev, compileParser(ev as EventType, spec)]),
);

/**
 * What each board reads of an event (DESIGN.md section 4), by type: bars their time, volume,
 * close and open; trades their price, size and time.
 */
const BOARD_FIELDS: ReadonlyMap<string, readonly string[]> = new Map([
  ['A', ['e', 'av', 'c', 'op', 's']],
  ['AM', ['e', 'av', 'c', 'op', 's']],
  ['T', ['p', 's', 't']],
]);

/**
 * Compiles the in-place check of one event type's board fields, for events already normalised
 * by {@link parseMessage} (the ticker in `sym`, timestamps in epoch ms, so normalising one must
 * leave it as it is).
 */
function compileBoardCheck(ev: EventType, spec: EventSpec, fields: readonly string[]): EventParser {
  const check: Partial<Record<FieldKind, string>> = {
    price: FIELD_CHECKS.price,
    ts: 'parseTimestampMs(v) === v',
  };
  return compile(`check${ev}`, [
    ...symbolCheck('r.sym', 'sym'),
    'let v;',
    ...fields.map((name) => {
      const kind = spec.fields.find(([field]) => field === name)![1];
      if (check[kind] === undefined) throw new Error(`decode: no board check for ${ev}.${name}`);
      const reason = kind === 'ts' ? 'invalid_timestamp' : 'invalid_field';
      return `v = r.${name}; if (v === null) r.${name} = undefined; else if (v !== undefined && !(${check[kind]})) return issue(${lit(reason)}, ${lit(`${ev}.${name} is not a valid ${kind === 'ts' ? 'ms timestamp' : kind}`)});`;
    }),
    ...notionalCheck(ev, spec, 'r'),
    // The other fields go unchecked, but a nil (how absent fields travel) still reads as absent.
    ...spec.fields
      .map(([name]) => name)
      .filter((name) => !fields.includes(name))
      .map((name) => `if (r.${name} === null) r.${name} = undefined;`),
    'return r;',
  ]);
}

const BOARD_CHECKS: ReadonlyMap<string, EventParser> = new Map(
  [...BOARD_FIELDS].map(([ev, fields]) => [
    ev,
    compileBoardCheck(ev as EventType, EVENT_SPECS.get(ev)!, fields),
  ]),
);

/**
 * Checks an event of a batch for what the boards read, in place: its symbol, and for bars and
 * trades the fields the boards use, which must be valid or absent. Its other fields are not
 * checked (the listener validated every field before publishing, and nothing downstream of an
 * analyzer reads them); on every field a `null`, which is how absent fields travel, becomes
 * `undefined`. Events of other types get the full {@link parseMessage}. About half its cost per
 * event (decode suite).
 */
export function checkBoardEvent(raw: unknown): MarketEvent | StatusMessage | DecodeIssue {
  if (typeof raw === 'object' && raw !== null) {
    const check = BOARD_CHECKS.get((raw as { ev?: unknown }).ev as string);
    if (check !== undefined) return check(raw as Record<string, unknown>);
  }
  return parseMessage(raw);
}

function isInts(value: unknown): boolean {
  if (!Array.isArray(value)) return false;
  for (const item of value) if (!Number.isSafeInteger(item)) return false;
  return true;
}

/**
 * Normalises a Massive timestamp to epoch milliseconds by its digit count: 13 digits are ms,
 * 16 µs, 19 ns (LULD and NOI send ns; FMV is documented as ns but sent as ms). Digit strings
 * are accepted too. Returns `undefined` for anything else. The result may be fractional.
 */
export function parseTimestampMs(value: unknown): number | undefined {
  const n =
    typeof value === 'number'
      ? value
      : typeof value === 'string' && /^\d{13,19}$/.test(value)
        ? Number(value)
        : NaN;
  if (!Number.isFinite(n)) return undefined;
  if (n >= 1e12 && n < 1e13) return n;
  if (n >= 1e15 && n < 1e16) return n / 1e3;
  if (n >= 1e18 && n < 1e19) return n / 1e6;
  return undefined;
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return `a ${typeof value}`;
}
