import { z } from 'zod';
import {
  ConfigError,
  createRandom,
  isTradingDate,
  newYorkTimeToMs,
  parseWith,
  tradingDay,
  typeBit,
} from '../core/index.ts';
import {
  createNormal,
  createUniverse,
  cumulative,
  pick,
  round4,
  tickPrice,
  type Universe,
} from './synth-universe.ts';

/**
 * A deterministic synthetic market open on the Massive stocks WebSocket wire: thousands of
 * symbols with heavy-tailed activity, a thin pre-market, the 09:30 ET burst with opening prints
 * carrying `op`, per-second and per-minute aggregates consistent with the trades, and realistic
 * frames. The model, its knobs and its calibration are described in SYNTH.md.
 */

/** Options of {@link synthesize}; every field has a default (see {@link SYNTH_DEFAULTS}). */
export interface SynthOptions {
  /** Trading date, `YYYY-MM-DD`. @default '2026-11-23' */
  date?: string;
  /** Number of listed symbols. @default 8000 */
  symbols?: number;
  /** Start of the session, New York time `HH:MM[:SS]`. @default '09:25' */
  from?: string;
  /** End of the session (exclusive), New York time `HH:MM[:SS]`. @default '09:40' */
  to?: string;
  /** Seed of every random draw: same options, same bytes. @default 1 */
  seed?: number;
  /** Market-wide trades per second before 09:30. @default 300 */
  premarketTradesPerSec?: number;
  /** Market-wide trades per second at the top of the opening burst. @default 40000 */
  peakTradesPerSec?: number;
  /** Market-wide trades per second the burst decays toward. @default 9000 */
  baselineTradesPerSec?: number;
  /** Seconds from 09:30:00 to the peak rate. @default 1.5 */
  burstRiseSec?: number;
  /** Time constant of the exponential decay from peak to baseline, seconds. @default 60 */
  burstDecaySec?: number;
  /** Zipf exponent of per-symbol activity (weight of rank r is (r + 10)^-exponent). @default 2 */
  activityExponent?: number;
  /** Symbols (most active first) that trade before the open, besides the movers. @default 300 */
  premarketSymbols?: number;
  /** Share of symbols with a large opening gap (±10–60%). @default 0.02 */
  moverShare?: number;
  /** Share of symbols that run up strongly after their open. @default 0.005 */
  runnerShare?: number;
  /** Share of symbols whose official open comes 5–60 s after 09:30. @default 0.005 */
  lateOpenShare?: number;
  /** Share of symbols without a previous close (new listings). @default 0.01 */
  noPrevCloseShare?: number;
  /** Share of trades printed off-exchange (`x: 4`). @default 0.4 */
  offExchangeShare?: number;
  /** Share of trades that are odd lots (under 100 shares, condition 37). @default 0.25 */
  oddLotShare?: number;
  /** Mean receive latency of a frame after its newest event, ms (grows with load). @default 2 */
  latencyMs?: number;
  /** Mean delay of aggregates after their window ends, ms (±500 per batch). @default 1500 */
  aggDelayMs?: number;
}

/** {@link SynthOptions} with every default filled in. */
export type ResolvedSynthOptions = Required<SynthOptions>;

/** One wire frame of a synthetic session. */
export interface SynthFrame {
  /** Receive time, µs since the epoch; non-decreasing over a session. */
  timeUs: number;
  /** The frame exactly as the Massive WebSocket sends it: a JSON array text. */
  data: Buffer;
  /** Events in the frame. */
  events: number;
  /** OR of `typeBit(ev)` over the events. */
  types: number;
}

/** A synthetic session: its metadata, and its frames generated on demand. */
export interface SynthRecording {
  meta: { date: string; prevClose: Record<string, number>; synth: ResolvedSynthOptions };
  /** Generates the session's frames lazily; each call starts over and yields the same frames. */
  frames(): Iterable<SynthFrame>;
}

/** The defaults of {@link SynthOptions}. */
export const SYNTH_DEFAULTS: ResolvedSynthOptions = {
  date: '2026-11-23',
  symbols: 8000,
  from: '09:25',
  to: '09:40',
  seed: 1,
  premarketTradesPerSec: 300,
  peakTradesPerSec: 40_000,
  baselineTradesPerSec: 9000,
  burstRiseSec: 1.5,
  burstDecaySec: 60,
  activityExponent: 2,
  premarketSymbols: 300,
  moverShare: 0.02,
  runnerShare: 0.005,
  lateOpenShare: 0.005,
  noPrevCloseShare: 0.01,
  offExchangeShare: 0.4,
  oddLotShare: 0.25,
  latencyMs: 2,
  aggDelayMs: 1500,
};

const D = SYNTH_DEFAULTS;
const clock = z
  .string()
  .regex(/^([01]\d|2[0-3]):[0-5]\d(:[0-5]\d)?$/, 'must be HH:MM or HH:MM:SS (New York time)');
const rate = z.number().min(0).max(10_000_000);
const share = z.number().min(0).max(1);
const schema = z.strictObject({
  date: z
    .string()
    .regex(/^\d{4}-\d{2}-\d{2}$/, 'must be YYYY-MM-DD')
    .default(D.date),
  symbols: z.number().int().min(1).max(100_000).default(D.symbols),
  from: clock.default(D.from),
  to: clock.default(D.to),
  seed: z.number().int().min(0).max(0xffff_ffff).default(D.seed),
  premarketTradesPerSec: rate.default(D.premarketTradesPerSec),
  peakTradesPerSec: rate.default(D.peakTradesPerSec),
  baselineTradesPerSec: rate.default(D.baselineTradesPerSec),
  burstRiseSec: z.number().min(0.1).max(600).default(D.burstRiseSec),
  burstDecaySec: z.number().min(0.1).max(86_400).default(D.burstDecaySec),
  activityExponent: z.number().min(0).max(5).default(D.activityExponent),
  premarketSymbols: z.number().int().min(0).max(100_000).default(D.premarketSymbols),
  moverShare: share.default(D.moverShare),
  runnerShare: share.default(D.runnerShare),
  lateOpenShare: share.default(D.lateOpenShare),
  noPrevCloseShare: share.default(D.noPrevCloseShare),
  offExchangeShare: share.default(D.offExchangeShare),
  oddLotShare: share.default(D.oddLotShare),
  latencyMs: z.number().min(0).max(10_000).default(D.latencyMs),
  aggDelayMs: z.number().min(500).max(60_000).default(D.aggDelayMs),
});

/**
 * Validates synth options over {@link SYNTH_DEFAULTS}; throws `ConfigError` naming the field
 * (a non-trading date, `from` not before `to`, a window outside 04:00 to the regular close).
 */
export function parseSynthOptions(input: SynthOptions = {}): ResolvedSynthOptions {
  const options = parseWith(schema, input, 'synth');
  if (Number.isNaN(Date.parse(`${options.date}T00:00:00Z`)))
    throw new ConfigError('synth.date', `not a calendar date, got "${options.date}"`);
  if (!isTradingDate(options.date))
    throw new ConfigError('synth.date', `${options.date} is not a trading date`);
  const day = tradingDay(options.date)!;
  const fromMs = newYorkTimeToMs(options.date, options.from);
  const toMs = newYorkTimeToMs(options.date, options.to);
  if (fromMs >= toMs)
    throw new ConfigError('synth.from', `must be before to (${options.to}), got "${options.from}"`);
  if (fromMs < day.preOpenMs)
    throw new ConfigError('synth.from', `must be at or after 04:00, got "${options.from}"`);
  if (toMs > day.closeMs)
    throw new ConfigError('synth.to', `must be at or before the close, got "${options.to}"`);
  return options;
}

/** Lit venues by Massive exchange id, repeated by rough market share. */
const LIT_VENUES = [12, 12, 12, 10, 10, 11, 11, 8, 8, 19, 19, 21, 21, 15, 20, 7, 18, 2, 17, 1, 3];
/** Listing exchange (the opening print's venue) by tape. */
const PRIMARY = [0, 10, 11, 12];
/** The `c` field of a trade by kind (regular, opening, pre-market, ISO), then by odd lot. */
const CONDITIONS = [
  ['', ',"c":[37]'],
  [',"c":[17]', ',"c":[17]'],
  [',"c":[12]', ',"c":[12,37]'],
  [',"c":[14]', ',"c":[14,37]'],
];
const T_BIT = typeBit('T');
const REGULAR = 0;
const OPENING = 1;
const PREMARKET = 2;
const ISO = 3;

/** Per-symbol running bars of one window: trade count, volume, notional, o/h/l/c. */
class Bars {
  n: Float64Array;
  v: Float64Array;
  pv: Float64Array;
  o: Float64Array;
  h: Float64Array;
  l: Float64Array;
  c: Float64Array;
  /** Symbols with a trade in the window, in order of their first trade. */
  touched: number[] = [];

  constructor(symbols: number) {
    [this.n, this.v, this.pv, this.o, this.h, this.l, this.c] = Array.from(
      { length: 7 },
      () => new Float64Array(symbols),
    ) as [
      Float64Array,
      Float64Array,
      Float64Array,
      Float64Array,
      Float64Array,
      Float64Array,
      Float64Array,
    ];
  }

  /** Adds one trade of symbol `i`. */
  add(i: number, p: number, size: number): void {
    this.merge(i, 1, size, p * size, p, p, p, p);
  }

  /** Adds symbol `i`'s bar of a sub-window of this window. */
  addBar(bars: Bars, i: number): void {
    this.merge(
      i,
      bars.n[i]!,
      bars.v[i]!,
      bars.pv[i]!,
      bars.o[i]!,
      bars.h[i]!,
      bars.l[i]!,
      bars.c[i]!,
    );
  }

  /** Forgets every bar: the next window starts. */
  clear(): void {
    for (const i of this.touched) this.n[i] = this.v[i] = this.pv[i] = 0;
    this.touched = [];
  }

  private merge(
    i: number,
    n: number,
    v: number,
    pv: number,
    o: number,
    h: number,
    l: number,
    c: number,
  ): void {
    if (this.n[i] === 0) {
      this.touched.push(i);
      this.o[i] = o;
      this.h[i] = h;
      this.l[i] = l;
    } else {
      this.h[i] = Math.max(this.h[i]!, h);
      this.l[i] = Math.min(this.l[i]!, l);
    }
    this.n[i] = this.n[i]! + n;
    this.v[i] = this.v[i]! + v;
    this.pv[i] = this.pv[i]! + pv;
    this.c[i] = c;
  }
}

/**
 * Generates a deterministic synthetic market session (see {@link SynthOptions} and SYNTH.md).
 * Options are validated at once; the frames are generated lazily, one second at a time.
 */
export function synthesize(options: SynthOptions = {}): SynthRecording {
  const o = parseSynthOptions(options);
  const openMs = tradingDay(o.date)!.openMs;
  const fromMs = newYorkTimeToMs(o.date, o.from);
  const toMs = newYorkTimeToMs(o.date, o.to);
  const universe = createUniverse(o, openMs, fromMs);
  return {
    meta: { date: o.date, prevClose: universe.prevClose, synth: { ...o } },
    frames: () => new Session(o, universe, openMs).run(fromMs, toMs),
  };
}

/** Market-wide trades per second in the second starting at `startMs`, before noise. */
function tradeRate(o: ResolvedSynthOptions, openMs: number, startMs: number): number {
  if (startMs < openMs) return o.premarketTradesPerSec;
  const elapsed = (startMs - openMs) / 1000;
  const ramp = Math.min(1, (elapsed + 1) / o.burstRiseSec);
  const decay = Math.exp(-Math.max(0, elapsed + 0.5 - o.burstRiseSec) / o.burstDecaySec);
  const level = o.baselineTradesPerSec + (o.peakTradesPerSec - o.baselineTradesPerSec) * decay;
  return o.premarketTradesPerSec + (level - o.premarketTradesPerSec) * ramp;
}

/** The moving side of a session: prices, counters, open bars and frames not yet released. */
class Session {
  o: ResolvedSynthOptions;
  u: Universe;
  openMs: number;
  random: () => number;
  normal: () => number;
  preCum: Float64Array;
  regCum: Float64Array;
  topWeight: number;
  logMid: Float64Array;
  lastMs: Float64Array;
  tradeId: Float64Array;
  seq: Float64Array;
  /** Official open price; 0 until known. */
  op: Float64Array;
  dayV: Float64Array;
  dayPv: Float64Array;
  second: Bars;
  minute: Bars;
  /** Frames built but not yet yielded, because an earlier one may still come. */
  pending: SynthFrame[] = [];
  /** The trade frame being filled: its events, first and last trade time, limits. */
  parts: string[] = [];
  frameStart = -Infinity;
  frameLast = 0;
  frameCap = 1;
  frameFlushMs = 0;
  lastTradeUs = 0;
  /** Trade rate of the current second relative to the peak: feed latency grows with it. */
  load = 0;
  /** Volatility multiplier of the current second (the open is the most volatile time). */
  volMul = 1;

  constructor(o: ResolvedSynthOptions, u: Universe, openMs: number) {
    const n = o.symbols;
    this.o = o;
    this.u = u;
    this.openMs = openMs;
    this.random = createRandom((o.seed ^ 0x5bd1e995) >>> 0);
    this.normal = createNormal(this.random);
    this.preCum = cumulative(u.preWeight);
    this.regCum = cumulative(u.regWeight);
    this.topWeight = Math.max(...u.regWeight);
    this.logMid = Float64Array.from(u.startLog);
    this.lastMs = new Float64Array(n);
    this.tradeId = Float64Array.from(u.startLog, () => 1 + Math.floor(this.random() * 100_000));
    this.seq = Float64Array.from(u.startLog, () => 1000 + Math.floor(this.random() * 1_000_000));
    this.op = new Float64Array(n);
    this.dayV = new Float64Array(n);
    this.dayPv = new Float64Array(n);
    this.second = new Bars(n);
    this.minute = new Bars(n);
  }

  /** Yields the frames of [fromMs, toMs) in receive order, one second of market time at a time. */
  *run(fromMs: number, toMs: number): Generator<SynthFrame> {
    const { u, op } = this;
    this.lastMs.fill(fromMs);
    // A window starting after the open: symbols already open carry their official open at once.
    if (fromMs > this.openMs)
      u.openAt.forEach((at, i) => {
        if (Number.isNaN(at)) op[i] = tickPrice(Math.exp(this.logMid[i]!));
      });
    const opens = [...u.openAt.keys()]
      .filter((i) => u.openAt[i]! < toMs)
      .sort((a, b) => u.openAt[a]! - u.openAt[b]! || a - b);
    let nextOpen = 0;
    for (let start = fromMs; start < toMs; start += 1000) {
      const end = start + 1000;
      let k = nextOpen;
      while (k < opens.length && u.openAt[opens[k]!]! < end) k++;
      this.tradeSecond(start, opens.slice(nextOpen, k));
      nextOpen = k;
      this.second.touched.forEach((i) => this.minute.addBar(this.second, i));
      this.sendBars(this.second, 'A', start, end);
      if (end % 60_000 === 0) {
        if (end - 60_000 >= fromMs) this.sendBars(this.minute, 'AM', end - 60_000, end);
        this.minute.clear();
      }
      yield* this.release(end * 1000);
    }
    yield* this.release(Infinity);
  }

  /** Prints the trades of the second starting at `start`, with the opening prints due in it. */
  tradeSecond(start: number, opens: number[]): void {
    const { o, u, random, normal, openMs } = this;
    const pre = start < openMs;
    const expected = tradeRate(o, openMs, start) * Math.exp(0.04 * normal());
    const count = Math.max(0, Math.round(expected + Math.sqrt(expected) * normal()));
    this.load = expected / Math.max(1, o.peakTradesPerSec);
    this.volMul = pre ? 1.5 : 1 + 3 * Math.exp(-(start - openMs) / 120_000);
    const offsets = Uint16Array.from({ length: count }, () => Math.floor(random() * 1000)).sort();
    const cum = pre ? this.preCum : this.regCum;
    const quiet = cum[cum.length - 1] === 0;
    let nextOpen = 0;
    for (let k = 0; k <= count; k++) {
      const t = k < count ? start + offsets[k]! : start + 1000;
      for (; nextOpen < opens.length && u.openAt[opens[nextOpen]!]! <= t; nextOpen++)
        this.trade(opens[nextOpen]!, u.openAt[opens[nextOpen]!]!, OPENING);
      if (k === count || quiet) continue;
      const i = pick(cum, random());
      // Not open yet: the opening print must be the symbol's first regular trade.
      if (!pre && u.openAt[i]! > t) continue;
      this.trade(i, t, pre ? PREMARKET : REGULAR);
    }
    this.closeTradeFrame();
  }

  /** Moves symbol `i`'s mid price to time `t`: drift (runners) and a Gaussian step. */
  advance(i: number, t: number): number {
    const { u, lastMs, logMid } = this;
    const dt = (t - lastMs[i]!) / 1000;
    if (dt > 0) {
      const runMs = Math.min(t, u.runTo[i]!) - Math.max(lastMs[i]!, u.runFrom[i]!);
      const drift = (u.runRate[i]! * Math.max(0, runMs)) / 1000;
      logMid[i] = logMid[i]! + drift + u.sigma[i]! * this.volMul * Math.sqrt(dt) * this.normal();
      lastMs[i] = t;
    }
    return Math.exp(logMid[i]!);
  }

  /** Prints one trade of symbol `i` at `t`; `kind` is REGULAR, OPENING or PREMARKET. */
  trade(i: number, t: number, kind: number): void {
    const { o, u, random } = this;
    const mid = this.advance(i, t);
    const opening = kind === OPENING;
    const halfSpread = Math.max(0.0002, 0.01 / mid);
    const p = tickPrice(opening ? mid : mid * (1 + halfSpread * (2 * random() - 1)));
    const lot = 100 * (p < 1 ? 5 : p < 5 ? 2 : 1);
    const odd = !opening && random() < o.oddLotShare;
    const size = opening
      ? lot *
        Math.ceil((20 + 3000 * Math.sqrt(u.regWeight[i]! / this.topWeight)) * (0.5 + random()))
      : odd
        ? 1 + Math.floor(99 * random() ** 2)
        : lot * Math.min(500, Math.floor((1 - random()) ** (-1 / 1.8)));
    const off = !opening && random() < o.offExchangeShare;
    const x = opening
      ? PRIMARY[u.tape[i]!]!
      : off
        ? 4
        : LIT_VENUES[Math.floor(random() * LIT_VENUES.length)]!;
    const sweep = kind === REGULAR && !off && random() < 0.08;
    const codes = CONDITIONS[sweep ? ISO : kind]![odd ? 1 : 0]!;
    const id = (this.tradeId[i] = this.tradeId[i]! + 1);
    const q = (this.seq[i] = this.seq[i]! + 1 + Math.floor(-4 * Math.log(1 - random())));
    if (this.parts.length >= this.frameCap || t > this.frameStart + this.frameFlushMs) {
      this.closeTradeFrame();
      this.frameStart = t;
      this.frameCap = 1 + Math.floor(99 * random() ** 1.5);
      this.frameFlushMs = random() < 0.5 ? 0 : 1;
    }
    this.frameLast = t;
    this.parts.push(
      `${u.tradeHead[i]}${id}","x":${x},"p":${p},"s":${size}${codes},"t":${t},"q":${q},"z":${u.tape[i]}}`,
    );
    if (kind !== PREMARKET && this.op[i] === 0) this.op[i] = p;
    this.dayV[i] = this.dayV[i]! + size;
    this.dayPv[i] = this.dayPv[i]! + p * size;
    this.second.add(i, p, size);
  }

  /** Queues the trade frame being filled, received a few ms after its newest trade. */
  closeTradeFrame(): void {
    if (this.parts.length === 0) return;
    const latencyUs = Math.round(this.o.latencyMs * 1000 * (0.5 + this.random()) * (1 + this.load));
    this.lastTradeUs = Math.max(this.lastTradeUs, this.frameLast * 1000 + latencyUs);
    this.pending.push(frame(this.parts, this.lastTradeUs, T_BIT));
    this.parts = [];
  }

  /** Queues the bars of the window [s, e), sent about `aggDelayMs` after `e`, and clears them. */
  sendBars(bars: Bars, ev: 'A' | 'AM', s: number, e: number): void {
    const { u, op, dayV, dayPv, random } = this;
    const events = bars.touched.map((i) => {
      const v = bars.v[i]!;
      const open = op[i]! > 0 ? `"op":${op[i]},` : '';
      return `{"ev":"${ev}","sym":"${u.names[i]}","v":${v},"av":${dayV[i]},${open}"vw":${round4(bars.pv[i]! / v)},"o":${bars.o[i]},"c":${bars.c[i]},"h":${bars.h[i]},"l":${bars.l[i]},"a":${round4(dayPv[i]! / dayV[i]!)},"z":${Math.round(v / bars.n[i]!)},"s":${s},"e":${e}}`;
    });
    bars.clear();
    let timeUs = (e + this.o.aggDelayMs + (random() - 0.5) * 1000) * 1000;
    for (let k = 0; k < events.length;) {
      const size = 30 + Math.floor(random() * 71);
      timeUs += 100 + random() * 500;
      this.pending.push(frame(events.slice(k, k + size), Math.round(timeUs), typeBit(ev)));
      k += size;
    }
  }

  /** Yields the pending frames received before `untilUs`, in receive order. */
  *release(untilUs: number): Generator<SynthFrame> {
    this.pending.sort((a, b) => a.timeUs - b.timeUs);
    const cut = this.pending.findIndex((f) => f.timeUs >= untilUs);
    const ready = cut === -1 ? this.pending : this.pending.slice(0, cut);
    this.pending = cut === -1 ? [] : this.pending.slice(cut);
    yield* ready;
  }
}

/** A wire frame of `events` (JSON texts) received at `timeUs`. */
function frame(events: string[], timeUs: number, types: number): SynthFrame {
  return {
    timeUs,
    data: Buffer.from(`[${events.join(',')}]`, 'latin1'),
    events: events.length,
    types,
  };
}
