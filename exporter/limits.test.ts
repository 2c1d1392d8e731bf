import { describe, expect, it } from 'vitest';
import { DEFAULT_PROBE_LIMITS, parseProbeLimits } from './limits.ts';

describe('parseProbeLimits', () => {
  it('merges over the defaults, keeping an explicit 0 where 0 is allowed', () => {
    expect(parseProbeLimits()).toEqual(DEFAULT_PROBE_LIMITS);
    expect(parseProbeLimits({ maxSeries: 5, maxRedirects: 0 })).toEqual({
      ...DEFAULT_PROBE_LIMITS,
      maxSeries: 5,
      maxRedirects: 0,
    });
  });

  it('names the first limit out of range', () => {
    expect(() => parseProbeLimits({ maxSeries: 0 })).toThrow(
      'maxSeries: expected a whole number >= 1, got 0',
    );
    expect(() => parseProbeLimits({ maxRedirects: -1 })).toThrow(
      'maxRedirects: expected a whole number >= 0, got -1',
    );
    expect(() => parseProbeLimits({ maxLabelValueBytes: 1.5 })).toThrow('maxLabelValueBytes');
    expect(() => parseProbeLimits({ maxBodyBytes: Number.NaN })).toThrow('maxBodyBytes');
  });
});
