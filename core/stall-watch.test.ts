import { describe, expect, it } from 'vitest';
import { newYorkTimeToMs } from './calendar.ts';
import { createStallWatch, marketSessionOpen } from './stall-watch.ts';

describe('createStallWatch', () => {
  const open = () => true;

  it('reports a stall once the data counter has not moved for the timeout', () => {
    const clock = { ms: 1_000 };
    const watch = createStallWatch({ timeoutMs: 30_000, sessionOpen: open, now: () => clock.ms });
    watch.reset(5);
    clock.ms += 29_999;
    expect(watch.check(5)).toBe(false);
    expect(watch.silentMs()).toBe(29_999);
    clock.ms += 1;
    expect(watch.check(5)).toBe(true);
  });

  it('counts silence from the last reading that saw data', () => {
    const clock = { ms: 0 };
    const watch = createStallWatch({ timeoutMs: 1_000, sessionOpen: open, now: () => clock.ms });
    watch.reset(0);
    for (let count = 1; count <= 10; count++) {
      clock.ms += 900;
      expect(watch.check(count)).toBe(false);
    }
    expect(watch.quietSinceMs).toBe(9_000);
    clock.ms += 999;
    expect(watch.check(10)).toBe(false);
    clock.ms += 1;
    expect(watch.check(10)).toBe(true);
  });

  it('expects quiet while the market is closed, and counts from the session’s start', () => {
    const preOpen = newYorkTimeToMs('2026-11-24', '04:00');
    const clock = { ms: preOpen - 3_600_000 };
    const watch = createStallWatch({ timeoutMs: 30_000, now: () => clock.ms });
    watch.reset(0);
    // Read once a second, as the client does: the night's last reading is at 03:59:59.
    for (; clock.ms < preOpen; clock.ms += 1_000) expect(watch.check(0)).toBe(false);
    expect(watch.silentMs()).toBe(1_000);
    clock.ms = preOpen + 28_999;
    expect(watch.check(0)).toBe(false);
    clock.ms = preOpen + 29_000;
    expect(watch.check(0)).toBe(true);
  });

  it('is off with a timeout of 0', () => {
    const clock = { ms: 0 };
    const watch = createStallWatch({ timeoutMs: 0, sessionOpen: open, now: () => clock.ms });
    watch.reset(0);
    clock.ms += 1e9;
    expect(watch.check(0)).toBe(false);
  });

  it('rejects a negative or fractional timeout', () => {
    expect(() => createStallWatch({ timeoutMs: -1 })).toThrow(/timeoutMs/);
    expect(() => createStallWatch({ timeoutMs: 0.5 })).toThrow(/timeoutMs/);
  });
});

describe('marketSessionOpen', () => {
  it('is open from 04:00 to 20:00 ET on trading days only', () => {
    expect(marketSessionOpen(newYorkTimeToMs('2026-11-24', '03:59:59'))).toBe(false);
    expect(marketSessionOpen(newYorkTimeToMs('2026-11-24', '04:00'))).toBe(true);
    expect(marketSessionOpen(newYorkTimeToMs('2026-11-24', '19:59:59'))).toBe(true);
    expect(marketSessionOpen(newYorkTimeToMs('2026-11-24', '20:00'))).toBe(false);
    // Thanksgiving, and the early close the day after (after-hours end at 17:00).
    expect(marketSessionOpen(newYorkTimeToMs('2026-11-26', '10:00'))).toBe(false);
    expect(marketSessionOpen(newYorkTimeToMs('2026-11-27', '16:59'))).toBe(true);
    expect(marketSessionOpen(newYorkTimeToMs('2026-11-27', '17:00'))).toBe(false);
    // A Saturday.
    expect(marketSessionOpen(newYorkTimeToMs('2026-11-28', '10:00'))).toBe(false);
  });
});
