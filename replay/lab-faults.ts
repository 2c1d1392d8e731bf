import { newYorkTimeToMs } from '../core/index.ts';
import type { LabCheck, LabFault, LabSample } from './lab-types.ts';

/** The faults `openbell lab --fault` injects. */
export const FAULT_KINDS = [
  'rabbitmq-restart',
  'rabbitmq-kill',
  'redis-restart',
  'redis-pause',
  'lba-kill',
  'massive-drop',
  'massive-stall',
] as const;

/** One of {@link FAULT_KINDS}. */
export type FaultKind = (typeof FAULT_KINDS)[number];

/** A parsed `--fault <kind>@<time>[:<duration>]`. */
export interface FaultSpec {
  kind: FaultKind;
  /** The spec as written, for reports. */
  spec: string;
  /** When: a market time (`HH:MM[:SS]` ET of the recording's date) or an offset from the start. */
  at: { marketTime: string } | { offsetMs: number };
  /** How long the fault lasts; 0 for an instant one (a kill not followed by a restart). */
  durationMs: number;
}

/** Default duration of a fault given without one. */
const DEFAULT_DURATION_MS: Record<FaultKind, number> = {
  'rabbitmq-restart': 5000,
  'rabbitmq-kill': 5000,
  'redis-restart': 5000,
  'redis-pause': 5000,
  'lba-kill': 0,
  'massive-drop': 0,
  'massive-stall': 10_000,
};

const DURATION = /^(\d+(?:\.\d+)?)(ms|s|m)$/;

/** Parses `20s`, `1.5s`, `500ms`, `2m` into ms; throws naming `what` otherwise. */
export function parseDurationMs(text: string, what: string): number {
  const match = DURATION.exec(text);
  if (match === null) {
    throw new Error(
      `${what}: expected a duration such as 10s, 500ms or 2m, got ${JSON.stringify(text)}`,
    );
  }
  const unit = { ms: 1, s: 1000, m: 60_000 }[match[2] as 'ms' | 's' | 'm'];
  return Math.round(Number(match[1]) * unit);
}

/**
 * Parses `--fault <kind>@<time>[:<duration>]`: `rabbitmq-kill@+20s:10s`, `lba-kill@09:30:05`,
 * `redis-pause@09:30:05:3s`. The time is a market time (ET, `HH:MM` or `HH:MM:SS`) or an offset
 * from the replay's start (`+20s`). Throws an Error naming the bad part.
 */
export function parseFaultSpec(spec: string): FaultSpec {
  const at = spec.indexOf('@');
  if (at < 0) throw new Error(`--fault ${spec}: expected <kind>@<time>[:<duration>]`);
  const kind = spec.slice(0, at);
  if (!(FAULT_KINDS as readonly string[]).includes(kind)) {
    throw new Error(`--fault ${spec}: unknown kind "${kind}"; one of ${FAULT_KINDS.join(', ')}`);
  }
  const rest = spec.slice(at + 1);
  let when: FaultSpec['at'];
  let duration: string | undefined;
  if (rest.startsWith('+')) {
    const [offset, ...more] = rest.slice(1).split(':');
    when = { offsetMs: parseDurationMs(offset ?? '', `--fault ${spec}: the offset`) };
    if (more.length > 1) throw new Error(`--fault ${spec}: expected +<offset>[:<duration>]`);
    duration = more[0];
  } else {
    const parts = rest.split(':');
    // HH:MM, HH:MM:SS, either followed by :<duration> (which carries a unit, unlike seconds).
    if (parts.length > 2 && DURATION.test(parts.at(-1)!)) duration = parts.pop();
    if (parts.length < 2 || parts.length > 3 || !parts.every((p) => /^\d{2}$/.test(p))) {
      throw new Error(
        `--fault ${spec}: the time must be HH:MM[:SS] (ET) or +<offset> such as +20s`,
      );
    }
    const [hh, mm, ss = '00'] = parts.map(Number);
    if (hh! > 23 || mm! > 59 || Number(ss) > 59) {
      throw new Error(`--fault ${spec}: ${parts.join(':')} is not a time of day`);
    }
    when = { marketTime: parts.length === 2 ? `${parts.join(':')}:00` : parts.join(':') };
  }
  const durationMs =
    duration === undefined
      ? DEFAULT_DURATION_MS[kind as FaultKind]
      : parseDurationMs(duration, `--fault ${spec}: the duration`);
  return { kind: kind as FaultKind, spec, at: when, durationMs };
}

/**
 * Whether a fault is due: its offset from the replay's start (wall clock) has passed, or the
 * replay's market clock has reached its market time on the recording's `date`.
 */
export function faultDue(
  fault: FaultSpec,
  now: { sinceStartMs: number; marketMs: number | undefined },
  date: string,
): boolean {
  if ('offsetMs' in fault.at) return now.sinceStartMs >= fault.at.offsetMs;
  return now.marketMs !== undefined && now.marketMs >= newYorkTimeToMs(date, fault.at.marketTime);
}

/**
 * Seconds from a fault's end until the pipeline's lag p99 is back under `lagMs` (the first sample
 * after the end whose p99 is under it); `undefined` when it never is within the samples.
 */
export function recoveryMs(
  fault: Pick<LabFault, 'endWallMs'>,
  samples: readonly LabSample[],
  lagMs = 1000,
): number | undefined {
  const back = samples.find(
    (s) => s.wallMs >= fault.endWallMs && s.lagP99Ms !== null && s.lagP99Ms < lagMs,
  );
  return back === undefined ? undefined : Math.max(0, back.wallMs - fault.endWallMs);
}

/** One `recovery:<kind>` check per fault: lag back under 1 s within `limitMs` of its end. */
export function judgeRecovery(
  faults: readonly LabFault[],
  samples: readonly LabSample[],
  limitMs: number,
): LabCheck[] {
  return faults.map((fault) => {
    const ms = recoveryMs(fault, samples);
    return {
      name: `recovery:${fault.kind}`,
      passed: ms !== undefined && ms <= limitMs,
      detail:
        ms === undefined
          ? `lag p99 never got back under 1 s after ${fault.spec} ended`
          : `lag p99 back under 1 s ${(ms / 1000).toFixed(1)} s after ${fault.spec} ended ` +
            `(limit ${(limitMs / 1000).toFixed(0)} s)`,
    };
  });
}
