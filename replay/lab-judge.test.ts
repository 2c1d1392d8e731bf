import { describe, expect, it } from 'vitest';
import type { BoardsView } from '../core/index.ts';
import { judge } from './lab-judge.ts';
import { parseFaultSpec } from './lab-faults.ts';
import type { LabRun, LabSample } from './lab-types.ts';

const boards: BoardsView = {
  date: '2026-11-24',
  boards: { gappers: [], gainers: [], volume: [], trades: [], momentum: [] },
};
const totals: LabRun['totals'] = {
  sentEvents: 100,
  receivedEvents: 100,
  appliedEvents: 100,
  listenerDrops: 0,
  expired: 0,
  maxLengthDrops: 0,
  lagP50Ms: 10,
  lagP99Ms: 12_000,
  lagMaxMs: 15_000,
  latenessP50Ms: 0,
  latenessP99Ms: 1,
  wallSeconds: 60,
  exits: { mdp: '0', 'lba-1': 'killed by a fault', 'lba-1b': '0' },
};
const sample = (second: number, sentPerSec: number, lagP99Ms: number): LabSample => ({
  wallMs: second * 1000,
  marketMs: second * 1000,
  sentPerSec,
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
// The busiest second at 5 s; a fault from 20 s to 25 s slows 20–30 s.
const samples = [
  sample(5, 1000, 50),
  ...Array.from({ length: 40 }, (_, n) => sample(15 + n, 10, n >= 5 && n <= 15 ? 8000 : 40)),
];

describe('lab judge', () => {
  it('leaves the seconds of a fault to its recovery check, and a process it killed is no failure', () => {
    const checks = judge(totals, samples, boards, boards, {
      speed: '1',
      lagP99LimitMs: 2000,
      faults: [parseFaultSpec('lba-kill@+20s:5s')],
      recoveryLimitMs: 10_000,
      faultWindows: [{ startWallMs: 20_000, endWallMs: 25_000 }],
    });
    const byName = Object.fromEntries(checks.map((c) => [c.name, c]));
    expect(byName['processes']?.passed).toBe(true);
    expect(byName['lag-p99']).toMatchObject({ passed: true, skipped: true });
    expect(byName['recovery']).toMatchObject({ passed: true });
    expect(byName['drops']).toMatchObject({ passed: true, skipped: true });
  });

  it('judges every second and the run-wide p99 without faults', () => {
    const checks = judge({ ...totals, exits: { mdp: '0' } }, samples, boards, boards, {
      speed: '1',
      lagP99LimitMs: 2000,
    });
    const byName = Object.fromEntries(checks.map((c) => [c.name, c]));
    expect(byName['lag-p99']).toMatchObject({ passed: false });
    expect(byName['recovery']).toMatchObject({
      passed: false,
      detail: '11 of 40 seconds from 10 s after the peak had p99 lag ≥ 1 s',
    });
  });
});
