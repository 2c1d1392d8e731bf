import { describe, expect, it } from 'vitest';
import { createLogThrottle } from './log-throttle.ts';

describe('createLogThrottle', () => {
  it('writes the first line of a key, holds back repeats within the interval, then reports them', () => {
    let now = 1_000;
    const throttle = createLogThrottle({ intervalMs: 10_000, now: () => now });
    expect(throttle.take('status')).toBe(0);
    now += 1;
    expect(throttle.take('status')).toBeUndefined();
    now += 9_000;
    expect(throttle.take('status')).toBeUndefined();
    now += 998;
    expect(throttle.take('status')).toBeUndefined();
    now += 1; // 10 s after the line written
    expect(throttle.take('status')).toBe(3);
    expect(throttle.take('status')).toBeUndefined();
    now += 10_000;
    expect(throttle.take('status')).toBe(1);
    now += 10_000;
    expect(throttle.take('status')).toBe(0);
  });

  it('keeps keys apart', () => {
    let now = 0;
    const throttle = createLogThrottle({ intervalMs: 100, now: () => now });
    expect(throttle.take('a')).toBe(0);
    expect(throttle.take('b')).toBe(0);
    expect(throttle.take('a')).toBeUndefined();
    now = 100;
    expect(throttle.take('a')).toBe(1);
    expect(throttle.take('b')).toBe(0);
  });

  it('forgets the key written longest ago past maxKeys, so any key set stays bounded', () => {
    let now = 0;
    const throttle = createLogThrottle({ intervalMs: 1_000, maxKeys: 2, now: () => now });
    throttle.take('a');
    now = 1;
    throttle.take('b');
    expect(throttle.take('a')).toBeUndefined();
    now = 2;
    throttle.take('c'); // forgets 'a', the key written longest ago, and its held-back line
    expect(throttle.take('b')).toBeUndefined();
    expect(throttle.take('a')).toBe(0);
  });

  it('rejects a negative interval and a key limit below 1', () => {
    expect(() => createLogThrottle({ intervalMs: -1 })).toThrow(/intervalMs/);
    expect(() => createLogThrottle({ maxKeys: 0 })).toThrow(/maxKeys/);
  });
});
