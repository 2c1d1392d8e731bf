import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import {
  createApplyCheck,
  createHealthMonitor,
  type ApplyCounts,
  type DependencyCheck,
} from './health.ts';

function capture() {
  const lines: Record<string, unknown>[] = [];
  const log = pino(
    { level: 'info' },
    { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) },
  );
  return { log, lines };
}

describe('createHealthMonitor', () => {
  it('is ok only when every dependency is, and names those that are not', () => {
    const clock = { ms: 1_000 };
    const state = { redis: { ok: true, state: 'ready' } as ReturnType<DependencyCheck> };
    const monitor = createHealthMonitor({
      checks: {
        massive: () => ({ ok: false, state: 'backoff', detail: 'closed 1006 (stalled)' }),
        redis: () => state.redis,
      },
      log: capture().log,
      now: () => clock.ms,
    });
    expect(monitor.ok()).toBe(false);
    expect(monitor.status(false)).toBe('degraded');
    expect(monitor.status(true)).toBe('stopping');
    expect(monitor.reason()).toBe('massive backoff (closed 1006 (stalled))');
    expect(monitor.dependencies()).toEqual({
      massive: { ok: false, state: 'backoff', detail: 'closed 1006 (stalled)', sinceMs: 1_000 },
      redis: { ok: true, state: 'ready', sinceMs: 1_000 },
    });
    clock.ms = 5_000;
    state.redis = { ok: false, state: 'reconnecting' };
    expect(monitor.reason()).toBe('massive backoff (closed 1006 (stalled)), redis reconnecting');
    // `sinceMs` moves when the state changes, not on every reading.
    clock.ms = 7_000;
    expect(monitor.dependencies()['redis']?.sinceMs).toBe(5_000);
    expect(monitor.dependencies()['massive']?.sinceMs).toBe(1_000);
  });

  it('logs a dependency going away and coming back once each, and not the start', () => {
    const clock = { ms: 0 };
    const { log, lines } = capture();
    let redis: ReturnType<DependencyCheck> = { ok: false, state: 'connecting' };
    const monitor = createHealthMonitor({
      checks: { redis: () => redis },
      log,
      now: () => clock.ms,
    });
    monitor.ok();
    redis = { ok: true, state: 'ready' };
    monitor.ok();
    expect(lines).toEqual([]);
    clock.ms = 10_000;
    redis = { ok: false, state: 'reconnecting' };
    for (let n = 0; n < 5; n++) monitor.ok();
    redis = { ok: false, state: 'connecting' };
    monitor.ok();
    clock.ms = 12_500;
    redis = { ok: true, state: 'ready' };
    monitor.ok();
    monitor.ok();
    expect(lines.map((l) => [l['msg'], l['dependency'], l['state'], l['downMs']])).toEqual([
      ['dependency unavailable', 'redis', 'reconnecting', undefined],
      ['dependency back', 'redis', 'ready', 2_500],
    ]);
  });

  it('treats a check that throws as a dependency that is not ok', () => {
    const monitor = createHealthMonitor({
      checks: {
        odd: () => {
          throw new Error('boom');
        },
      },
      log: capture().log,
    });
    expect(monitor.dependencies()['odd']).toMatchObject({ ok: false, state: 'error' });
  });
});

describe('createApplyCheck', () => {
  const setUp = () => {
    const clock = { ms: 0 };
    const counts: ApplyCounts = { applied: 0, failed: 0, held: 0 };
    const check = createApplyCheck({ read: () => counts, staleMs: 10_000, now: () => clock.ms });
    return { clock, counts, check };
  };

  it('fails once applies have failed for staleMs while work is held, and recovers on a success', () => {
    const { clock, counts, check } = setUp();
    expect(check()).toEqual({ ok: true, state: 'ok' });
    counts.held = 3;
    for (let s = 1; s <= 9; s++) {
      clock.ms = s * 1_000;
      counts.failed += 3;
      expect(check().ok).toBe(true);
    }
    clock.ms = 10_000;
    counts.failed += 3;
    expect(check()).toEqual({
      ok: false,
      state: 'failing',
      detail: 'no apply succeeded for 10 s with 3 batches held; 30 failed since the last success',
    });
    clock.ms = 11_000;
    counts.applied += 3;
    counts.held = 0;
    expect(check()).toEqual({ ok: true, state: 'ok' });
  });

  it('fails when held work neither succeeds nor fails (a hung Redis)', () => {
    const { clock, counts, check } = setUp();
    counts.applied = 5;
    check();
    counts.held = 1;
    clock.ms = 9_999;
    expect(check().ok).toBe(true);
    clock.ms = 10_000;
    expect(check()).toMatchObject({ ok: false, state: 'stuck' });
  });

  it('stays ok while idle, however long since the last apply', () => {
    const { clock, counts, check } = setUp();
    counts.applied = 5;
    counts.failed = 2;
    for (clock.ms = 0; clock.ms < 60_000; clock.ms += 1_000) expect(check().ok).toBe(true);
    // Work arrives after a long quiet: it has staleMs from the last idle reading to succeed.
    counts.held = 2;
    clock.ms = 59_000 + 9_999;
    expect(check().ok).toBe(true);
  });
});
