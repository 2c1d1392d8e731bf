import type { Meter } from '@opentelemetry/api';
import * as hdr from 'hdr-histogram-js';
import { setImmediate as yieldToLoop, setTimeout as sleep } from 'node:timers/promises';
import {
  ConfigError,
  createDurationHistogram,
  newYorkTimeToMs,
  observableCounter,
  observableGauge,
  observeBatch,
  openbellMeter,
  tradingDateOf,
  type FrameRange,
  type RecordedFrame,
  type Recording,
} from '../core/index.ts';

/** How fast to replay: real time × `factor`, a fixed event rate, or as fast as the sink takes. */
export type ReplayPace =
  { kind: 'speed'; factor: number } | { kind: 'rate'; eventsPerSec: number } | { kind: 'max' };

/** Parses `--speed <k|max>` and `--rate <events/s>` (exclusive); the default is real time. */
export function parsePace(speed: string | undefined, rate: string | undefined): ReplayPace {
  if (speed !== undefined && rate !== undefined)
    throw new ConfigError('replay.speed', 'give --speed or --rate, not both');
  if (rate !== undefined) {
    const eventsPerSec = Number(rate);
    if (!(eventsPerSec > 0) || !Number.isFinite(eventsPerSec))
      throw new ConfigError('replay.rate', `must be a positive number of events/s, got ${rate}`);
    return { kind: 'rate', eventsPerSec };
  }
  if (speed === undefined) return { kind: 'speed', factor: 1 };
  if (speed === 'max') return { kind: 'max' };
  const factor = Number(speed.replace(/x$/i, ''));
  if (!(factor > 0) || !Number.isFinite(factor))
    throw new ConfigError('replay.speed', `must be a positive factor or "max", got ${speed}`);
  return { kind: 'speed', factor };
}

/** Describes a pace in a few characters: `1x`, `10x`, `max`, `50000 ev/s`. */
export function formatPace(pace: ReplayPace): string {
  if (pace.kind === 'max') return 'max';
  return pace.kind === 'speed' ? `${pace.factor}x` : `${pace.eventsPerSec} ev/s`;
}

/**
 * Turns `--from`/`--to` trading-day times (New York, `HH:MM[:SS]`) into a frame range, on the
 * recording's trading date (its meta, else the date of its first frame).
 */
export function rangeOf(recording: Recording, from?: string, to?: string): FrameRange {
  const firstUs = recording.totals.firstUs;
  const date =
    typeof recording.meta.date === 'string'
      ? recording.meta.date
      : firstUs === undefined
        ? undefined
        : tradingDateOf(firstUs / 1000);
  if (date === undefined || (from === undefined && to === undefined)) return {};
  const at = (time: string, flag: string): number => {
    try {
      return newYorkTimeToMs(date, time) * 1000;
    } catch (error) {
      throw new ConfigError(`replay.${flag}`, (error as Error).message);
    }
  };
  const range: FrameRange = {};
  if (from !== undefined) range.fromUs = at(from, 'from');
  if (to !== undefined) range.toUs = at(to, 'to');
  if (range.fromUs !== undefined && range.toUs !== undefined && range.fromUs >= range.toUs)
    throw new ConfigError('replay.from', `${from} is not before --to ${to}`);
  return range;
}

/** Options of {@link replay}. */
export interface ReplayOptions {
  recording: Recording;
  range?: FrameRange;
  pace: ReplayPace;
  /** Start over at the end until stopped. */
  loop?: boolean;
  /** Delivers one frame; must not block. */
  send(frame: RecordedFrame): void;
  /** Awaited between read blocks at `max` pace, so the sink sets the speed. */
  backpressure?(): Promise<void>;
  signal?: AbortSignal;
}

/** Live counters of a replay; read them while it runs. */
export interface ReplayStats {
  frames: number;
  events: number;
  /** Passes over the range started (more than one with `loop`). */
  passes: number;
  /** Receive time (µs) of the last frame sent: the market clock of the replay. */
  marketUs: number | undefined;
  /** Receive time (µs) of the first frame of the range. */
  firstUs: number | undefined;
  /** Wall ms since the start, and the ms the schedule intended for the last frame sent. */
  elapsedMs: number;
  intendedMs: number;
  /** How late the last frame went out against its schedule, ms. */
  behindMs: number;
}

/** A running replay: its counters, lateness percentiles, and the promise of its end. */
export interface Replay {
  readonly stats: Readonly<ReplayStats>;
  /** Lateness (actual − intended send time) percentiles in ms; zeros at `max` pace. */
  lateness(): { p50: number; p99: number; max: number; count: number };
  readonly done: Promise<ReplayStats>;
}

/**
 * Replays a recording's frames against the clock of its first frame: frame k goes out at
 * `start + (t_k − t_0) / speed` (or after `events / rate` seconds). Each send is scheduled from
 * the start, never from the previous send, so timing error does not accumulate; when the sink or
 * the machine falls behind, frames go out at once until the replay catches up.
 */
export function replay(options: ReplayOptions): Replay {
  const { pace, recording, signal } = options;
  const stats: ReplayStats = {
    frames: 0,
    events: 0,
    passes: 0,
    marketUs: undefined,
    firstUs: undefined,
    elapsedMs: 0,
    intendedMs: 0,
    behindMs: 0,
  };
  // Lateness in µs, 1 µs to 1 h.
  const late = hdr.build({
    lowestDiscernibleValue: 1,
    highestTrackableValue: 3_600_000_000,
    numberOfSignificantValueDigits: 3,
  });
  const start = performance.now();
  observeReplay(stats, pace.kind === 'speed' ? pace.factor : 0);
  const lateSeconds = createDurationHistogram(
    openbellMeter(),
    'openbell_replay_lateness_seconds',
    'Actual minus intended send time, per frame',
  );

  const intendedOf = (frame: RecordedFrame, passStartMs: number, passFirstUs: number): number =>
    pace.kind === 'speed'
      ? passStartMs + (frame.timeUs - passFirstUs) / 1000 / pace.factor
      : pace.kind === 'rate'
        ? (stats.events / pace.eventsPerSec) * 1000
        : performance.now() - start;

  const run = async (): Promise<ReplayStats> => {
    let passStartMs = 0;
    do {
      stats.passes++;
      let passFirstUs: number | undefined;
      for await (const chunk of recording.chunks(options.range)) {
        let slept = false;
        for (const frame of chunk) {
          if (isAborted(signal)) return finish();
          passFirstUs ??= frame.timeUs;
          stats.firstUs ??= frame.timeUs;
          const intended = intendedOf(frame, passStartMs, passFirstUs);
          // Again while a timer woke early (libuv times from the loop's cached clock): a frame
          // goes out at most 1 ms before it is due, never a timer's slack earlier.
          for (
            let wait = intended - (performance.now() - start);
            wait >= 1;
            wait = intended - (performance.now() - start)
          ) {
            slept = true;
            await sleep(wait, undefined, { signal }).catch(() => undefined);
            if (isAborted(signal)) return finish();
          }
          const now = performance.now() - start;
          stats.behindMs = Math.max(0, now - intended);
          if (pace.kind !== 'max') {
            late.recordValue(
              Math.min(3_600_000_000, Math.max(1, Math.round(stats.behindMs * 1000))),
            );
            lateSeconds.record(stats.behindMs / 1000);
          }
          options.send(frame);
          stats.frames++;
          stats.events += frame.events;
          stats.marketUs = frame.timeUs;
          stats.intendedMs = intended;
          stats.elapsedMs = now;
        }
        if (options.backpressure !== undefined && pace.kind === 'max') await options.backpressure();
        // Behind schedule nothing sleeps: let the sockets flush between read blocks all the same.
        else if (!slept) await yieldToLoop();
      }
      if (passFirstUs === undefined) break;
      passStartMs = stats.intendedMs;
    } while (options.loop === true && !isAborted(signal));
    return finish();
  };

  const finish = (): ReplayStats => {
    stats.elapsedMs = performance.now() - start;
    return stats;
  };

  return {
    stats,
    lateness: () =>
      late.totalCount === 0
        ? { p50: 0, p99: 0, max: 0, count: 0 }
        : {
            p50: late.getValueAtPercentile(50) / 1000,
            p99: late.getValueAtPercentile(99) / 1000,
            max: late.maxValue / 1000,
            count: late.totalCount,
          },
    done: run(),
  };
}

/** Read through a function: TypeScript narrows `signal.aborted` once and misses that it changes. */
function isAborted(signal: AbortSignal | undefined): boolean {
  return signal?.aborted === true;
}

/** Events a range holds, from the index (exact to the index's one-second grain; the whole file without a range). */
export function eventsInRange(recording: Recording, range: FrameRange = {}): number {
  const ordinal = (us: number | undefined, fallback: number): number => {
    if (us === undefined) return fallback;
    const entry = recording.index.find((e) => e.timeUs >= us);
    return entry === undefined ? recording.totals.events : entry.event;
  };
  return Math.max(0, ordinal(range.toUs, recording.totals.events) - ordinal(range.fromUs, 0));
}

/** The replay whose progress the process reports: the latest one, kept after it ends. */
let reported: { stats: Readonly<ReplayStats>; speed: number } | undefined;
let observedMeter: Meter | undefined;

/**
 * Reports the replay's progress as observable instruments (docs/METRICS.md). One set per process:
 * a new replay takes them over (its counters start again from zero, which `rate` handles), and
 * the last values stay readable after the replay ends, for the final scrape.
 */
function observeReplay(stats: Readonly<ReplayStats>, speed: number): void {
  reported = { stats, speed };
  const meter = openbellMeter();
  if (observedMeter === meter) return;
  observedMeter = meter;
  const m = {
    frames: observableCounter(meter, 'openbell_replay_frames_sent', 'Frames sent'),
    events: observableCounter(meter, 'openbell_replay_events_sent', 'Events in the frames sent'),
    elapsed: observableGauge(
      meter,
      'openbell_replay_elapsed_seconds',
      'Wall time since the replay started',
      's',
    ),
    intended: observableGauge(
      meter,
      'openbell_replay_intended_elapsed_seconds',
      'The time the schedule intended for the last frame sent',
      's',
    ),
    speed: observableGauge(
      meter,
      'openbell_replay_speed',
      'The target speed (0: max or a fixed rate)',
    ),
  };
  // Registered for the life of the process: a later replay takes it over through `reported`.
  observeBatch(meter, Object.values(m), (o) => {
    if (reported === undefined) return;
    o.observe(m.frames, reported.stats.frames);
    o.observe(m.events, reported.stats.events);
    o.observe(m.elapsed, reported.stats.elapsedMs / 1000);
    o.observe(m.intended, reported.stats.intendedMs / 1000);
    o.observe(m.speed, reported.speed);
  });
}
