import { createRandom } from '../core/index.ts';
import type { ResolvedSynthOptions } from './synth.ts';

/**
 * The per-symbol model of a synthetic session (see synth.ts and SYNTH.md): ticker names, previous
 * closes and opening gaps, movers and runners, heavy-tailed activity weights, volatility and
 * opening-print times, plus the seeded draws and tick prices the session shares with it.
 */

/** The static side of a session: symbols, reference prices and per-symbol behaviour. */
export interface Universe {
  names: string[];
  /** `{"ev":"T","sym":"XXX","i":"` of each symbol: the constant head of its trades. */
  tradeHead: string[];
  tape: Uint8Array;
  /** Log of the mid price at the start of the session. */
  startLog: Float64Array;
  /** Log-price volatility, per √second. */
  sigma: Float64Array;
  /** Activity weights: share of the market's trades, before and after 09:30. */
  regWeight: Float64Array;
  preWeight: Float64Array;
  /** Epoch ms of the opening print; NaN when the first regular trade opens the symbol. */
  openAt: Float64Array;
  /** Runners: drift of the log price per second, between `runFrom` and `runTo` (epoch ms). */
  runRate: Float64Array;
  runFrom: Float64Array;
  runTo: Float64Array;
  prevClose: Record<string, number>;
}

const ACTIVITY_OFFSET = 10;
const SECONDS_PER_DAY = 23_400;

/** Rounds to cents. */
const round2 = (x: number): number => Math.round(x * 100) / 100;
/** Rounds to hundredths of a cent. */
export const round4 = (x: number): number => Math.round(x * 10_000) / 10_000;
/** A trade price on its tick: cents from $1, hundredths of a cent below. */
export const tickPrice = (x: number): number => (x >= 1 ? round2(x) : Math.max(0.0001, round4(x)));

/** Standard normal draws (Box–Muller) from a uniform source. */
export function createNormal(random: () => number): () => number {
  let spare = NaN;
  return () => {
    if (!Number.isNaN(spare)) {
      const value = spare;
      spare = NaN;
      return value;
    }
    const radius = Math.sqrt(-2 * Math.log(1 - random()));
    const angle = 2 * Math.PI * random();
    spare = radius * Math.sin(angle);
    return radius * Math.cos(angle);
  };
}

/** `count` distinct integers of [lo, hi) in random order (partial Fisher–Yates). */
function sample(random: () => number, count: number, lo: number, hi: number): number[] {
  const pool = Array.from({ length: Math.max(0, hi - lo) }, (_, k) => lo + k);
  const n = Math.min(count, pool.length);
  for (let k = 0; k < n; k++) {
    const j = k + Math.floor(random() * (pool.length - k));
    [pool[k], pool[j]] = [pool[j]!, pool[k]!];
  }
  return pool.slice(0, n);
}

/** How many of `n` symbols a share selects: at least one when the share is positive. */
const countOf = (share: number, n: number): number =>
  share > 0 ? Math.max(1, Math.round(share * n)) : 0;

/** Unique tickers: 1–5 letters (mostly 3–4), about 1% with a class suffix like `XYZ.A`. */
function createNames(random: () => number, n: number): string[] {
  const lengths = [1, 2, 2, 3, 3, 3, 3, 3, 3, 3, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 5, 5];
  const seen = new Set<string>();
  while (seen.size < n) {
    const classed = random() < 0.01;
    const length = classed ? 3 : lengths[Math.floor(random() * lengths.length)]!;
    let name = '';
    for (let k = 0; k < length; k++) name += String.fromCharCode(65 + Math.floor(random() * 26));
    seen.add(classed ? `${name}.${random() < 0.5 ? 'A' : 'B'}` : name);
  }
  return [...seen];
}

/** The universe of a session: who trades how much, from which price, opening when. */
export function createUniverse(o: ResolvedSynthOptions, openMs: number, fromMs: number): Universe {
  const random = createRandom(o.seed);
  const normal = createNormal(random);
  const n = o.symbols;
  const names = createNames(random, n);
  const zipf = (rank: number): number => (rank + ACTIVITY_OFFSET) ** -o.activityExponent;
  const u: Universe = {
    names,
    tradeHead: names.map((sym) => `{"ev":"T","sym":"${sym}","i":"`),
    tape: new Uint8Array(n),
    startLog: new Float64Array(n),
    sigma: new Float64Array(n),
    regWeight: new Float64Array(n),
    preWeight: new Float64Array(n),
    openAt: new Float64Array(n).fill(NaN),
    runRate: new Float64Array(n),
    runFrom: new Float64Array(n),
    runTo: new Float64Array(n),
    prevClose: {},
  };
  const movers = new Set(sample(random, countOf(o.moverShare, n), 0, n));
  const runners = sample(random, countOf(o.runnerShare, n), 0, n);
  // New listings (no previous close) are spread over the activity ranks, never the top five.
  const unlisted = new Set(sample(random, countOf(o.noPrevCloseShare, n), Math.min(5, n - 1), n));
  for (let i = 0; i < n; i++) {
    const name = names[i]!;
    const mover = movers.has(i);
    u.tape[i] = name.length >= 4 && !name.includes('.') ? 3 : random() < 0.75 ? 1 : 2;
    const prev = round2(500 ** random());
    const size = 0.1 * 6 ** random();
    const gap = mover ? Math.log(random() < 0.7 ? 1 + size : 1 - size) : 0.008 * normal();
    if (unlisted.has(i)) u.startLog[i] = Math.log(100 ** random());
    else {
      u.prevClose[name] = prev;
      u.startLog[i] = Math.log(prev) + gap;
    }
    const price = Math.exp(u.startLog[i]!);
    const dailyVol = 0.02 * Math.exp(0.35 * normal()) * (price < 5 ? 2.5 : 1) * (mover ? 3 : 1);
    u.sigma[i] = dailyVol / Math.sqrt(SECONDS_PER_DAY);
    // Movers are the day's hot names: they borrow the activity of a top rank.
    u.regWeight[i] = Math.max(zipf(i), mover ? zipf(random() * 200) : 0);
    // Pre-market activity is more concentrated than regular-hours activity.
    const preRank = mover ? random() * 100 : i < o.premarketSymbols ? i : NaN;
    u.preWeight[i] = Number.isNaN(preRank) ? 0 : zipf(preRank) ** 1.5;
  }
  for (const i of runners) {
    u.regWeight[i] = Math.max(u.regWeight[i]!, zipf(random() * 100));
    u.sigma[i] = u.sigma[i]! * 2;
  }
  assignOpens(u, o, random, openMs, fromMs);
  for (const i of runners) {
    const duration = 120 + random() * 480;
    const runFrom = Number.isNaN(u.openAt[i]!) ? openMs : u.openAt[i]!;
    u.runFrom[i] = runFrom;
    u.runTo[i] = runFrom + duration * 1000;
    u.runRate[i] = Math.log(1.15 + random() * 0.65) / duration;
  }
  return u;
}

/**
 * Opening prints: symbols expected to trade within a minute of the open get an explicit opening
 * print (Nasdaq at once, NYSE over the first seconds, a few late by 5–60 s); the rest open with
 * their first regular trade. Opens before `fromMs` are left out (the symbol is open already).
 */
function assignOpens(
  u: Universe,
  o: ResolvedSynthOptions,
  random: () => number,
  openMs: number,
  fromMs: number,
): void {
  const total = u.regWeight.reduce((sum, w) => sum + w, 0);
  const crossers = [...u.regWeight.keys()].filter(
    (i) => (o.baselineTradesPerSec * 60 * u.regWeight[i]!) / total >= 1,
  );
  const late = new Set(sample(random, countOf(o.lateOpenShare, o.symbols), 0, crossers.length));
  crossers.forEach((i, k) => {
    const tape = u.tape[i]!;
    const delay = late.has(k)
      ? 5000 + random() * 55_000
      : random() * (tape === 1 ? 3000 : tape === 2 ? 500 : 100);
    const at = openMs + Math.floor(delay);
    if (at >= fromMs) u.openAt[i] = at;
  });
}

/** Cumulative sums of `weights`, for weighted picks by binary search. */
export function cumulative(weights: Float64Array): Float64Array {
  let sum = 0;
  return weights.map((w) => (sum += w));
}

/** Index of the symbol a uniform draw `r` selects from cumulative weights `cum`. */
export function pick(cum: Float64Array, r: number): number {
  const target = r * cum[cum.length - 1]!;
  let lo = 0;
  let hi = cum.length - 1;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (cum[mid]! > target) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}
