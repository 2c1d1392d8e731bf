import { describe, expect, it } from 'vitest';
import { newYorkTimeToMs } from '../core/index.ts';
import { faultDue, judgeRecovery, parseFaultSpec, recoveryMs } from './lab-faults.ts';
import type { LabSample } from './lab-types.ts';

const sample = (wallMs: number, lagP99Ms: number | null): LabSample => ({
  wallMs,
  marketMs: wallMs,
  sentPerSec: 0,
  inPerSec: {},
  appliedPerSec: 0,
  queueDepth: 0,
  lagP50Ms: lagP99Ms,
  lagP99Ms,
  listenerDrops: 0,
  expired: 0,
  maxLengthDrops: 0,
  feedLatencyP99Ms: null,
  rssMiB: {},
});

describe('parseFaultSpec', () => {
  it('reads offsets, market times and durations', () => {
    expect(parseFaultSpec('rabbitmq-kill@+20s:10s')).toEqual({
      kind: 'rabbitmq-kill',
      spec: 'rabbitmq-kill@+20s:10s',
      at: { offsetMs: 20_000 },
      durationMs: 10_000,
    });
    expect(parseFaultSpec('redis-pause@09:30:05:1.5s')).toMatchObject({
      at: { marketTime: '09:30:05' },
      durationMs: 1500,
    });
    expect(parseFaultSpec('lba-kill@09:31')).toMatchObject({
      at: { marketTime: '09:31:00' },
      durationMs: 0,
    });
    expect(parseFaultSpec('massive-stall@+500ms')).toMatchObject({
      at: { offsetMs: 500 },
      durationMs: 10_000,
    });
    expect(parseFaultSpec('redis-restart@+1m:2m').durationMs).toBe(120_000);
  });

  it.each([
    ['rabbitmq-kill', /expected <kind>@<time>/],
    ['disk-full@+1s', /unknown kind "disk-full"; one of rabbitmq-restart/],
    ['lba-kill@+20', /the offset: expected a duration/],
    ['lba-kill@+20s:10', /the duration: expected a duration/],
    ['lba-kill@+1s:2s:3s', /expected \+<offset>\[:<duration>\]/],
    ['lba-kill@9:30', /HH:MM\[:SS\]/],
    ['lba-kill@25:00:00', /25:00:00 is not a time of day/],
  ])('refuses %s, naming the bad part', (spec, message) => {
    expect(() => parseFaultSpec(spec)).toThrow(message);
  });
});

describe('faultDue', () => {
  it('is due at its offset from the start, or once the market clock reaches its time', () => {
    const byOffset = parseFaultSpec('lba-kill@+20s');
    expect(faultDue(byOffset, { sinceStartMs: 19_999, marketMs: undefined }, '2026-11-24')).toBe(
      false,
    );
    expect(faultDue(byOffset, { sinceStartMs: 20_000, marketMs: undefined }, '2026-11-24')).toBe(
      true,
    );
    const byTime = parseFaultSpec('lba-kill@09:30:05');
    const at = newYorkTimeToMs('2026-11-24', '09:30:05');
    expect(faultDue(byTime, { sinceStartMs: 1e9, marketMs: at - 1 }, '2026-11-24')).toBe(false);
    expect(faultDue(byTime, { sinceStartMs: 0, marketMs: at }, '2026-11-24')).toBe(true);
    expect(faultDue(byTime, { sinceStartMs: 1e9, marketMs: undefined }, '2026-11-24')).toBe(false);
  });
});

describe('recovery after a fault', () => {
  const fault = {
    kind: 'rabbitmq-kill',
    spec: 'rabbitmq-kill@+20s:10s',
    startWallMs: 20_000,
    endWallMs: 30_000,
    startMarketMs: 0,
    endMarketMs: 0,
    detail: '',
  };
  const samples = [
    sample(29_000, 5000),
    sample(31_000, 4000),
    sample(32_000, null),
    sample(33_000, 2000),
    sample(34_000, 800),
    sample(35_000, 3000),
  ];

  it('is the time from its end to the first second with lag p99 under 1 s', () => {
    expect(recoveryMs(fault, samples)).toBe(4000);
    expect(recoveryMs(fault, samples.slice(0, 4))).toBeUndefined();
  });

  it('passes within the limit and fails past it or without recovery', () => {
    expect(judgeRecovery([fault], samples, 5000)).toEqual([
      {
        name: 'recovery:rabbitmq-kill',
        passed: true,
        detail: 'lag p99 back under 1 s 4.0 s after rabbitmq-kill@+20s:10s ended (limit 5 s)',
      },
    ]);
    expect(judgeRecovery([fault], samples, 3000)[0]!.passed).toBe(false);
    expect(judgeRecovery([fault], samples.slice(0, 3), 30_000)[0]).toMatchObject({
      passed: false,
      detail: 'lag p99 never got back under 1 s after rabbitmq-kill@+20s:10s ended',
    });
  });
});
