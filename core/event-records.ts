import { EVENT_SPECS, type FieldKind } from './decode.ts';
import { EVENT_TYPES, type EventType, type MarketEvent } from './events.ts';
import { isExactNotional } from './notional.ts';

/**
 * Batch bodies written byte by byte, in the layout {@link decodeBatch} reads: an envelope map
 * `{ v, id, receivedAtMs, events }` whose events are msgpackr records (the structure extension:
 * the first event defines the record's keys inline, the rest name it by one byte), one record per
 * event type with the keys {@link parseMessage} returns, absent fields as nil.
 *
 * Two ways in. {@link RecordBuffer.writeEvent} encodes an event object. {@link transcodeFrame}
 * goes from a frame's JSON bytes straight to records, with no JS object per event: the listener's
 * hot path, because measurement says so (`npm run bench`, decode suite: JSON.parse, validation
 * and msgpackr cost about three times as much). It takes only frames it can prove it reads
 * exactly as {@link decodeFrame} does, and refuses the whole frame (writing nothing) at anything
 * else: status messages, unknown or repeated keys, nested values in fields it does not read,
 * escapes or non-ASCII in strings, -0, timestamps other than 13-digit ms, values
 * {@link decodeFrame} would reject. A refused frame takes the ordinary path, which counts what is
 * wrong with it.
 *
 * Numbers are exact: a decimal of at most 15 digits and 22 fraction digits is an integer below
 * 2^53 divided by an exact power of ten, one correctly rounded IEEE division, the same double
 * `JSON.parse` gives; longer ones go through `Number`, as `JSON.parse` would.
 */

/** Buffers grown past this by an outsized frame or batch go back to their first size after it. */
const SHRINK_PAST = 4 * 1024 * 1024;

/** The record id every batch gives its events' record (one event type per batch). */
const RECORD_ID = 0x40;
/** msgpack: fixext 1 of type 0x72 ('r'), msgpackr's record definition. */
const RECORD_DEFINITION = [0xd4, 0x72, RECORD_ID] as const;

const NIL = 0xc0;

/** Per event type: the record keys, each field's kind, and the record definition's bytes. */
interface RecordLayout {
  type: EventType;
  /** Index of the type in {@link EVENT_TYPES}. */
  index: number;
  /** The field names after `ev` and `sym`, in record order. */
  fields: readonly string[];
  kinds: readonly FieldKind[];
  /** The definition: extension header, then the keys as a msgpack array. */
  definition: Buffer;
  /** `ev`'s value, as msgpack. */
  evBytes: Buffer;
  /** Wire keys of up to four characters, as {@link keyTable} builds them. */
  keys: KeyTable;
  /** Whether its ticker travels as `sym` (the fast path reads only those). */
  symTicker: boolean;
  /** Trades: price × size must be exact ({@link isExactNotional}); field indexes of p and s. */
  notional: [p: number, s: number] | undefined;
}

const SYM = -1;

function msgpackString(value: string): number[] {
  const bytes = [...Buffer.from(value, 'utf8')];
  if (bytes.length > 31) throw new Error(`event-records: key ${value} too long`);
  return [0xa0 | bytes.length, ...bytes];
}

/** Up to four ASCII bytes packed into one int32: how the fast path reads a key. */
function keyCode(key: string): number {
  let code = 0;
  for (let n = 0; n < key.length; n++) code = (code << 8) | key.charCodeAt(n);
  return code;
}

/**
 * An open-addressed table from a key's code to its field index (`sym` is {@link SYM}): typed
 * arrays and small integers, cheaper per key than a Map of numbers past the small-integer range.
 */
interface KeyTable {
  codes: Int32Array;
  lengths: Uint8Array;
  fields: Int8Array;
}

const KEY_SLOTS = 64;

function keySlot(code: number, length: number): number {
  return (Math.imul(code ^ length, 0x9e3779b1) >>> 26) & (KEY_SLOTS - 1);
}

function keyTable(entries: readonly (readonly [key: string, field: number])[]): KeyTable {
  const table: KeyTable = {
    codes: new Int32Array(KEY_SLOTS),
    lengths: new Uint8Array(KEY_SLOTS),
    fields: new Int8Array(KEY_SLOTS),
  };
  for (const [key, field] of entries) {
    let slot = keySlot(keyCode(key), key.length);
    while (table.lengths[slot] !== 0) slot = (slot + 1) & (KEY_SLOTS - 1);
    table.codes[slot] = keyCode(key);
    table.lengths[slot] = key.length;
    table.fields[slot] = field;
  }
  return table;
}

/** The field of a key read as `code` (see {@link keyCode}) and `length`; NOT_A_FIELD when none. */
function lookUp(table: KeyTable, code: number, length: number): number {
  for (
    let slot = keySlot(code, length);
    table.lengths[slot] !== 0;
    slot = (slot + 1) & (KEY_SLOTS - 1)
  ) {
    if (table.lengths[slot] === length && table.codes[slot] === code) return table.fields[slot]!;
  }
  return NOT_A_FIELD;
}
const NOT_A_FIELD = -2;
const DECIMAL_TWIN = -3;

const LAYOUTS: readonly RecordLayout[] = EVENT_TYPES.map((type, index) => {
  const spec = EVENT_SPECS.get(type)!;
  const fields = spec.fields.map(([name]) => name);
  const names = ['ev', 'sym', ...fields];
  if (names.length > 15) throw new Error(`event-records: ${type} has too many fields`);
  const definition = Buffer.from([
    ...RECORD_DEFINITION,
    0x90 | names.length,
    ...names.flatMap(msgpackString),
  ]);
  const keys = keyTable([
    ['sym', SYM],
    ...fields.map((name, n) => [name, n] as const),
    // Decimal-string twins (`ds`, `dv`, `dav`) are read by the decoder only.
    ...spec.decimals.map(([wire]) => [wire, DECIMAL_TWIN] as const),
  ]);
  if (fields.some((name) => name.length > 4) || spec.decimals.some(([wire]) => wire.length > 4))
    throw new Error(`event-records: a ${type} key is longer than four characters`);
  return {
    type,
    index,
    fields,
    kinds: spec.fields.map(([, kind]) => kind),
    definition,
    evBytes: Buffer.from(msgpackString(type)),
    keys,
    symTicker: spec.ticker === 'sym',
    notional: spec.notional === true ? [fields.indexOf('p'), fields.indexOf('s')] : undefined,
  };
});

const LAYOUT_OF = new Map<string, RecordLayout>(LAYOUTS.map((l) => [l.type, l]));

/** The index of `type` in {@link EVENT_TYPES}, as {@link StagedEvents.types} holds it. */
export function typeIndex(type: EventType): number {
  return LAYOUT_OF.get(type)!.index;
}

/**
 * One batch's events as msgpack records, growing as events are written, reused batch after
 * batch ({@link RecordBuffer.seal} copies the bytes out and starts over).
 */
export class RecordBuffer {
  readonly type: EventType;
  readonly #layout: RecordLayout;
  #buf: Buffer;
  #pos = 0;
  #count = 0;

  readonly #initialBytes: number;

  constructor(type: EventType, initialBytes = 64 * 1024) {
    const layout = LAYOUT_OF.get(type);
    if (layout === undefined) throw new Error(`event-records: no layout for ${type}`);
    this.type = type;
    this.#layout = layout;
    this.#initialBytes = initialBytes;
    this.#buf = Buffer.allocUnsafe(initialBytes);
  }

  /** Events written since the last seal. */
  get count(): number {
    return this.#count;
  }

  #room(n: number): void {
    if (this.#pos + n <= this.#buf.length) return;
    const grown = Buffer.allocUnsafe(Math.max(this.#buf.length * 2, this.#pos + n));
    this.#buf.copy(grown, 0, 0, this.#pos);
    this.#buf = grown;
  }

  /** The record's header: its definition for the batch's first event, its id after. */
  #head(): void {
    if (this.#count++ === 0) {
      const { definition } = this.#layout;
      this.#room(definition.length);
      this.#pos = copyBytes(definition, 0, definition.length, this.#buf, this.#pos);
    } else {
      this.#room(1);
      this.#buf[this.#pos++] = RECORD_ID;
    }
  }

  /** Appends one event staged by {@link transcodeFrame}: its values, `[start, end)` of `from`. */
  appendStaged(from: Buffer, start: number, end: number): void {
    this.#head();
    this.#room(end - start);
    this.#pos = copyBytes(from, start, end, this.#buf, this.#pos);
  }

  /** Appends an event object of this buffer's type, as {@link parseMessage} returns it. */
  writeEvent(event: MarketEvent): void {
    if (event.ev !== this.type)
      throw new Error(`event-records: a ${event.ev} in a ${this.type} batch`);
    const pos = this.#pos;
    this.#head();
    try {
      const { fields, evBytes } = this.#layout;
      this.#room(evBytes.length);
      this.#pos = copyBytes(evBytes, 0, evBytes.length, this.#buf, this.#pos);
      this.#value(event.sym);
      const record = event as unknown as Record<string, unknown>;
      for (const name of fields) this.#value(record[name]);
    } catch (error) {
      // Never half a record in the batch: the event is taken back whole.
      this.#pos = pos;
      this.#count--;
      throw error;
    }
  }

  #value(value: unknown): void {
    this.#room(9);
    if (value === undefined || value === null) this.#buf[this.#pos++] = NIL;
    else if (typeof value === 'number') this.#pos = writeNumber(this.#buf, this.#pos, value);
    else if (typeof value === 'string') {
      const length = Buffer.byteLength(value, 'utf8');
      this.#room(5 + length);
      this.#pos = writeStrHeader(this.#buf, this.#pos, length);
      this.#pos += this.#buf.write(value, this.#pos, 'utf8');
    } else if (typeof value === 'boolean') this.#buf[this.#pos++] = value ? 0xc3 : 0xc2;
    else if (Array.isArray(value)) {
      this.#room(5);
      this.#pos = writeArrayHeader(this.#buf, this.#pos, value.length);
      for (const item of value) this.#value(item);
    } else throw new Error(`event-records: cannot write a ${typeof value}`);
  }

  /**
   * The batch as one self-contained message: the envelope, then the events written since the
   * last seal. Starts the buffer over.
   */
  seal(id: string, receivedAtMs: number): Buffer {
    const idLength = Buffer.byteLength(id, 'utf8');
    const headLength = 1 + 3 + 3 + (5 + idLength) + 13 + 9 + 7 + 5;
    const out = Buffer.allocUnsafe(headLength + this.#pos);
    let at = 0;
    out[at++] = 0x84;
    at = writeKey(out, at, 'v');
    out[at++] = 1;
    at = writeKey(out, at, 'id');
    at = writeStrHeader(out, at, idLength);
    at += out.write(id, at, 'utf8');
    at = writeKey(out, at, 'receivedAtMs');
    out[at++] = 0xcb;
    out.writeDoubleBE(receivedAtMs, at);
    at += 8;
    at = writeKey(out, at, 'events');
    out[at++] = 0xdd;
    out.writeUInt32BE(this.#count, at);
    at += 4;
    this.#buf.copy(out, at, 0, this.#pos);
    at += this.#pos;
    this.#pos = 0;
    this.#count = 0;
    // A batch of huge events grew the buffer: it is not kept at that size.
    if (this.#buf.length > SHRINK_PAST) this.#buf = Buffer.allocUnsafe(this.#initialBytes);
    return out.subarray(0, at);
  }
}

/**
 * Copies `[start, stop)` of `from` to `out` at `at`; returns the position after. Byte by byte
 * for the few bytes of a field, where `Buffer#copy`'s call costs more than the copy.
 */
function copyBytes(
  from: Uint8Array,
  start: number,
  stop: number,
  out: Uint8Array,
  at: number,
): number {
  if (stop - start > 64) {
    out.set(from.subarray(start, stop), at);
    return at + stop - start;
  }
  for (let n = start; n < stop; n++) out[at++] = from[n]!;
  return at;
}

function writeKey(out: Buffer, at: number, key: string): number {
  out[at++] = 0xa0 | key.length;
  return at + out.write(key, at, 'latin1');
}

function writeStrHeader(out: Buffer, at: number, length: number): number {
  if (length < 32) out[at++] = 0xa0 | length;
  else if (length < 0x100) {
    out[at++] = 0xd9;
    out[at++] = length;
  } else if (length < 0x10000) {
    out[at++] = 0xda;
    out.writeUInt16BE(length, at);
    at += 2;
  } else {
    out[at++] = 0xdb;
    out.writeUInt32BE(length, at);
    at += 4;
  }
  return at;
}

function writeArrayHeader(out: Buffer, at: number, length: number): number {
  if (length < 16) out[at++] = 0x90 | length;
  else if (length < 0x10000) {
    out[at++] = 0xdc;
    out.writeUInt16BE(length, at);
    at += 2;
  } else {
    out[at++] = 0xdd;
    out.writeUInt32BE(length, at);
    at += 4;
  }
  return at;
}

/** A number as msgpack: the smallest integer form within 32 bits, else a float64. At most 9 bytes. */
function writeNumber(out: Buffer, at: number, value: number): number {
  if (Number.isInteger(value) && value >= -0x80000000 && value <= 0xffffffff) {
    if (value >= 0) {
      // 0x40-0x7f are record ids in msgpackr's record extension, never plain integers.
      if (value < 0x40) out[at++] = value;
      else if (value < 0x100) {
        out[at++] = 0xcc;
        out[at++] = value;
      } else if (value < 0x10000) {
        out[at++] = 0xcd;
        out.writeUInt16BE(value, at);
        at += 2;
      } else {
        out[at++] = 0xce;
        out.writeUInt32BE(value, at);
        at += 4;
      }
    } else if (value >= -32) out[at++] = value & 0xff;
    else if (value >= -0x80) {
      out[at++] = 0xd0;
      out.writeInt8(value, at++);
    } else if (value >= -0x8000) {
      out[at++] = 0xd1;
      out.writeInt16BE(value, at);
      at += 2;
    } else {
      out[at++] = 0xd2;
      out.writeInt32BE(value, at);
      at += 4;
    }
    return at;
  }
  out[at++] = 0xcb;
  out.writeDoubleBE(value, at);
  return at + 8;
}

/** The first size of a {@link StagedEvents} buffer. */
const STAGED_BYTES = 256 * 1024;

/**
 * Events staged by {@link transcodeFrame}: each one's type (index into {@link EVENT_TYPES}) and
 * the `[start, end)` of its record values in `bytes`. Reused frame after frame.
 */
export class StagedEvents {
  bytes = Buffer.allocUnsafe(STAGED_BYTES);
  count = 0;
  types = new Uint8Array(1024);
  starts = new Int32Array(1024);
  ends = new Int32Array(1024);

  /** Once the staged events are used: a buffer an outsized frame grew goes back to its first size. */
  trim(): void {
    if (this.bytes.length > SHRINK_PAST) this.bytes = Buffer.allocUnsafe(STAGED_BYTES);
  }

  /** Makes room for `bytes` more bytes and one more event. */
  room(at: number, bytes: number): void {
    if (at + bytes > this.bytes.length) {
      const grown = Buffer.allocUnsafe(Math.max(this.bytes.length * 2, at + bytes));
      this.bytes.copy(grown, 0, 0, at);
      this.bytes = grown;
    }
    if (this.count === this.types.length) {
      const size = this.types.length * 2;
      const types = new Uint8Array(size);
      types.set(this.types);
      this.types = types;
      const starts = new Int32Array(size);
      starts.set(this.starts);
      this.starts = starts;
      const ends = new Int32Array(size);
      ends.set(this.ends);
      this.ends = ends;
    }
  }
}

// Character classes, as bits of one table indexed by byte.
const WS = 1;
const DIGIT = 2;
/** May start a ticker (see the SYMBOL pattern of decode.ts). */
const SYM_FIRST = 4;
/** May follow in a ticker. */
const SYM_REST = 8;
const CLASS = new Uint8Array(256);
for (const c of ' \t\n\r') CLASS[c.charCodeAt(0)]! |= WS;
for (let c = 0x30; c <= 0x39; c++) CLASS[c]! |= DIGIT | SYM_FIRST | SYM_REST;
for (let c = 0x41; c <= 0x5a; c++) {
  CLASS[c]! |= SYM_FIRST | SYM_REST;
  CLASS[c + 0x20]! |= SYM_FIRST | SYM_REST;
}
for (const c of '._-/^=+') CLASS[c.charCodeAt(0)]! |= SYM_REST;

/** Exact powers of ten, 10^0 to 10^22. */
const POW10 = Array.from({ length: 23 }, (_, n) => 10 ** n);

const QUOTE = 0x22;
const COMMA = 0x2c;
const COLON = 0x3a;
const MINUS = 0x2d;
const DOT = 0x2e;
const OPEN_ARRAY = 0x5b;
const CLOSE_ARRAY = 0x5d;
const OPEN_OBJECT = 0x7b;
const CLOSE_OBJECT = 0x7d;
const BACKSLASH = 0x5c;

/** The fast path's answer when it will not take a frame. */
const REFUSED = -1;

// Per field of the event being read: whether it was seen, and its value (a number, a bool as 0
// or 1, or a string's or array's [start, end) in the frame). Fields number at most 15.
const seen = new Uint8Array(16);
const numbers = new Float64Array(16);
const spanStart = new Int32Array(16);
const spanEnd = new Int32Array(16);

// The scanner's cursor, shared by the helpers below (they return REFUSED or a position).
const EMPTY_FRAME = Buffer.alloc(0);
let f: Buffer = EMPTY_FRAME;
let end = 0;
/** Set by {@link readNumber}: whether the number was plain digits (no fraction or exponent), its sign. */
let plain = true;
let negative = false;
let digitCount = 0;
let value = 0;

function skipSpace(at: number): number {
  const b = f;
  while (at < end && (CLASS[b[at]!]! & WS) !== 0) at++;
  return at;
}

/** Reads a plain-ASCII string without escapes from its opening quote; returns the position after it. */
function readString(at: number): number {
  const b = f;
  at++;
  const start = at;
  while (at < end) {
    const c = b[at]!;
    if (c === QUOTE) {
      spanStartOfString = start;
      return at + 1;
    }
    if (c === BACKSLASH || c < 0x20 || c >= 0x80) return REFUSED;
    at++;
  }
  return REFUSED;
}
let spanStartOfString = 0;

/**
 * Reads a JSON number into `value`; returns the position after it. Up to 15 digits and 22
 * fraction digits without an exponent, it is computed here; past that, by `Number` on its text
 * (the same correctly rounded conversion as `JSON.parse`).
 */
function readNumber(at: number): number {
  const b = f;
  const start = at;
  negative = b[at] === MINUS;
  if (negative) at++;
  let c = b[at]!;
  if (at >= end || (CLASS[c]! & DIGIT) === 0) return REFUSED;
  let m = 0;
  let digits = 0;
  if (c === 0x30) at++;
  else {
    while (at < end && (CLASS[(c = b[at]!)]! & DIGIT) !== 0) {
      m = m * 10 + (c - 0x30);
      digits++;
      at++;
    }
  }
  let fraction = 0;
  if (at < end && b[at] === DOT) {
    at++;
    while (at < end && (CLASS[(c = b[at]!)]! & DIGIT) !== 0) {
      m = m * 10 + (c - 0x30);
      digits++;
      fraction++;
      at++;
    }
    if (fraction === 0) return REFUSED;
  }
  let exponent = false;
  if (at < end && (b[at] === 0x65 || b[at] === 0x45)) {
    exponent = true;
    at++;
    if (at < end && (b[at] === 0x2b || b[at] === MINUS)) at++;
    if (at >= end || (CLASS[b[at]!]! & DIGIT) === 0) return REFUSED;
    while (at < end && (CLASS[b[at]!]! & DIGIT) !== 0) at++;
  }
  plain = !exponent && fraction === 0;
  digitCount = digits;
  if (digits > 15 || fraction > 22 || exponent) value = Number(f.toString('latin1', start, at));
  else {
    value = fraction === 0 ? m : m / POW10[fraction]!;
    if (negative) value = -value;
  }
  // JSON.parse keeps a -0 that msgpack would turn into 0: left to the ordinary path.
  if (Object.is(value, -0)) return REFUSED;
  return at;
}

/** Reads an array of integers; its span goes to `spanStart`/`spanEnd` of `field`. */
function readInts(at: number, field: number): number {
  const start = at;
  at = skipSpace(at + 1);
  if (at < end && f[at] === CLOSE_ARRAY) {
    spanStart[field] = start;
    spanEnd[field] = at + 1;
    return at + 1;
  }
  for (;;) {
    at = readNumber(at);
    if (at === REFUSED || !Number.isSafeInteger(value)) return REFUSED;
    at = skipSpace(at);
    if (at >= end) return REFUSED;
    if (f[at] === CLOSE_ARRAY) break;
    if (f[at] !== COMMA) return REFUSED;
    at = skipSpace(at + 1);
  }
  spanStart[field] = start;
  spanEnd[field] = at + 1;
  return at + 1;
}

/** Reads one field's value by kind; returns the position after it, or REFUSED. */
function readValue(at: number, field: number, kind: FieldKind): number {
  const c = f[at];
  if (c === 0x6e) {
    // null: as if absent.
    if (end - at >= 4 && f[at + 1] === 0x75 && f[at + 2] === 0x6c && f[at + 3] === 0x6c) {
      seen[field] = 1;
      return at + 4;
    }
    return REFUSED;
  }
  seen[field] = 2;
  switch (kind) {
    case 'price':
      at = readNumber(at);
      if (at === REFUSED || value < 0 || value === Infinity) return REFUSED;
      numbers[field] = value;
      return at;
    case 'int':
      at = readNumber(at);
      if (at === REFUSED || !Number.isSafeInteger(value)) return REFUSED;
      numbers[field] = value;
      return at;
    case 'ts':
      at = readNumber(at);
      // Epoch ms as Massive sends them; other units are normalised by the ordinary path.
      if (at === REFUSED || !plain || negative || digitCount !== 13) return REFUSED;
      numbers[field] = value;
      return at;
    case 'str':
      if (c !== QUOTE) return REFUSED;
      at = readString(at);
      if (at === REFUSED) return REFUSED;
      spanStart[field] = spanStartOfString;
      spanEnd[field] = at - 1;
      return at;
    case 'bool':
      if (
        c === 0x74 &&
        end - at >= 4 &&
        f[at + 1] === 0x72 &&
        f[at + 2] === 0x75 &&
        f[at + 3] === 0x65
      ) {
        numbers[field] = 1;
        return at + 4;
      }
      if (
        c === 0x66 &&
        end - at >= 5 &&
        f[at + 1] === 0x61 &&
        f[at + 2] === 0x6c &&
        f[at + 3] === 0x73 &&
        f[at + 4] === 0x65
      ) {
        numbers[field] = 0;
        return at + 5;
      }
      return REFUSED;
    case 'ints':
      if (c !== OPEN_ARRAY) return REFUSED;
      return readInts(at, field);
  }
}

/** Reads the `ev` value at `at` (after `"ev":`): the layout of a type the fast path takes. */
// The layouts the fast path reads, looked up once.
const LAYOUT_T = LAYOUT_OF.get('T')!;
const LAYOUT_A = LAYOUT_OF.get('A')!;
const LAYOUT_AM = LAYOUT_OF.get('AM')!;
const LAYOUT_Q = LAYOUT_OF.get('Q')!;

function readType(at: number): RecordLayout | undefined {
  if (f[at] !== QUOTE) return undefined;
  const c1 = f[at + 1];
  const c2 = f[at + 2];
  let layout: RecordLayout | undefined;
  if (c2 === QUOTE)
    layout = c1 === 0x54 ? LAYOUT_T : c1 === 0x41 ? LAYOUT_A : c1 === 0x51 ? LAYOUT_Q : undefined;
  else if (c1 === 0x41 && c2 === 0x4d && f[at + 3] === QUOTE) layout = LAYOUT_AM;
  return layout;
}

/** "ev" as {@link readEvent} packs keys. */
const EV_CODE = 0x65 * 256 + 0x76;

/** Skips a scalar value (string, number, true, false, null); nested values are refused. */
function skipValue(at: number): number {
  const c = f[at];
  if (c === QUOTE) return readString(at);
  if (c === MINUS || (CLASS[c!]! & DIGIT) !== 0) return readNumber(at);
  for (const word of WORDS) {
    if (c === word[0] && end - at >= word.length && word.every((b, n) => f[at + n] === b))
      return at + word.length;
  }
  return REFUSED;
}
const WORDS = ['true', 'false', 'null'].map((w) => [...Buffer.from(w)]);

let symStart = 0;
let symEnd = 0;

/**
 * Reads one event object from its `{`; returns the position after its `}`, or REFUSED. On
 * success the fields' values are in the tables above and its layout in `current`.
 */
function readEvent(at: number): number {
  const b = f;
  at = skipSpace(at + 1);
  // "ev" first, as Massive sends it.
  if (
    end - at < 5 ||
    b[at] !== QUOTE ||
    b[at + 1] !== 0x65 ||
    b[at + 2] !== 0x76 ||
    b[at + 3] !== QUOTE
  )
    return REFUSED;
  at = skipSpace(at + 4);
  if (b[at] !== COLON) return REFUSED;
  at = skipSpace(at + 1);
  const layout = readType(at);
  if (layout === undefined || !layout.symTicker) return REFUSED;
  at += layout.type.length + 2;
  current = layout;
  const { kinds, keys } = layout;
  for (let field = 0; field < kinds.length; field++) seen[field] = 0;
  symStart = -1;
  for (;;) {
    at = skipSpace(at);
    if (at >= end) return REFUSED;
    const c = b[at];
    if (c === CLOSE_OBJECT) return at + 1;
    if (c !== COMMA) return REFUSED;
    at = skipSpace(at + 1);
    if (b[at] !== QUOTE) return REFUSED;
    // The key, plain ASCII; known keys are at most four characters.
    let code = 0;
    let length = 0;
    at++;
    for (;;) {
      if (at >= end) return REFUSED;
      const k = b[at]!;
      if (k === QUOTE) break;
      if (k === BACKSLASH || k < 0x20 || k >= 0x80) return REFUSED;
      if (++length <= 4) code = (code << 8) | k;
      at++;
    }
    // A second "ev" would win in JSON.parse.
    if (length === 2 && code === EV_CODE) return REFUSED;
    const field = length <= 4 ? lookUp(keys, code, length) : NOT_A_FIELD;
    at = skipSpace(at + 1);
    if (b[at] !== COLON) return REFUSED;
    at = skipSpace(at + 1);
    if (at >= end) return REFUSED;
    if (field === DECIMAL_TWIN) return REFUSED;
    if (field === NOT_A_FIELD) {
      // A field openbell does not read: skipped, as decodeFrame ignores it.
      at = skipValue(at);
      if (at === REFUSED) return REFUSED;
    } else if (field === SYM) {
      if (symStart !== -1 || b[at] !== QUOTE) return REFUSED;
      at = readString(at);
      if (at === REFUSED) return REFUSED;
      symStart = spanStartOfString;
      symEnd = at - 1;
    } else {
      if (seen[field] !== 0) return REFUSED;
      at = readValue(at, field, kinds[field]!);
      if (at === REFUSED) return REFUSED;
    }
  }
}
let current: RecordLayout = LAYOUTS[0]!;

/** Whether the event just read is one {@link parseMessage} accepts. */
function acceptable(): boolean {
  const length = symEnd - symStart;
  if (symStart === -1 || length < 1 || length > 32) return false;
  if ((CLASS[f[symStart]!]! & SYM_FIRST) === 0) return false;
  for (let at = symStart + 1; at < symEnd; at++)
    if ((CLASS[f[at]!]! & SYM_REST) === 0) return false;
  const notional = current.notional;
  if (notional !== undefined) {
    const [p, s] = notional;
    if (seen[p] === 2 && seen[s] === 2 && !isExactNotional(numbers[p], numbers[s])) return false;
  }
  return true;
}

/** Writes the event just read as record values at `at` of `out`; returns the position after. */
function writeStaged(out: Buffer, at: number): number {
  const { evBytes, kinds } = current;
  at = copyBytes(evBytes, 0, evBytes.length, out, at);
  at = writeStrHeader(out, at, symEnd - symStart);
  at = copyBytes(f, symStart, symEnd, out, at);
  for (let field = 0; field < kinds.length; field++) {
    if (seen[field] !== 2) {
      out[at++] = NIL;
      continue;
    }
    switch (kinds[field]) {
      case 'str':
        at = writeStrHeader(out, at, spanEnd[field]! - spanStart[field]!);
        at = copyBytes(f, spanStart[field]!, spanEnd[field]!, out, at);
        break;
      case 'bool':
        out[at++] = numbers[field] === 1 ? 0xc3 : 0xc2;
        break;
      case 'ints':
        at = writeInts(out, at, spanStart[field]!, spanEnd[field]!);
        break;
      default:
        at = writeNumber(out, at, numbers[field]!);
    }
  }
  return at;
}

/** Writes the integer array read at `[start, end)` of the frame (checked by {@link readInts}). */
function writeInts(out: Buffer, at: number, start: number, stop: number): number {
  let count = 0;
  for (let n = start + 1; n < stop - 1; n++) if (f[n] === COMMA) count++;
  let pos = skipSpace(start + 1);
  if (f[pos] !== CLOSE_ARRAY) count++;
  at = writeArrayHeader(out, at, count);
  while (f[pos] !== CLOSE_ARRAY) {
    pos = readNumber(pos);
    at = writeNumber(out, at, value);
    pos = skipSpace(pos);
    if (f[pos] === COMMA) pos = skipSpace(pos + 1);
  }
  return at;
}

/**
 * Transcodes a whole frame (a JSON array of events) into `staged`, and returns how many events it
 * holds; returns `undefined`, having staged nothing, when the frame is not one it takes (see the
 * module's comment): the caller then decodes it the ordinary way.
 */
export function transcodeFrame(frame: Buffer, staged: StagedEvents): number | undefined {
  let count: number | undefined;
  try {
    count = stage(frame, staged);
  } catch {
    // Not expected (room is reserved ahead of every write), but a frame must never be lost to
    // the fast path: refused, it goes to the decoder.
    count = undefined;
  }
  f = EMPTY_FRAME;
  if (count === undefined) {
    staged.count = 0;
    staged.trim();
  }
  return count;
}

function stage(frame: Buffer, staged: StagedEvents): number | undefined {
  f = frame;
  end = frame.length;
  staged.count = 0;
  let out = 0;
  let at = skipSpace(0);
  if (f[at] !== OPEN_ARRAY) return undefined;
  at = skipSpace(at + 1);
  if (f[at] === CLOSE_ARRAY) return undefined;
  for (;;) {
    if (f[at] !== OPEN_OBJECT) return undefined;
    const eventStart = at;
    at = readEvent(at);
    if (at === REFUSED || !acceptable()) return undefined;
    // Written, an event's values take less than three bytes per byte of its JSON, plus 64: at
    // worst 9 bytes (a float64) for 4 (`5e9,` in an integer array), and a nil per absent field.
    staged.room(out, (at - eventStart) * 3 + 64);
    const n = staged.count++;
    staged.types[n] = current.index;
    staged.starts[n] = out;
    out = writeStaged(staged.bytes, out);
    staged.ends[n] = out;
    at = skipSpace(at);
    if (at >= end) return undefined;
    if (f[at] === CLOSE_ARRAY) break;
    if (f[at] !== COMMA) return undefined;
    at = skipSpace(at + 1);
  }
  if (skipSpace(at + 1) !== end) return undefined;
  return staged.count;
}
