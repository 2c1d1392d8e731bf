/** Options of {@link createLogThrottle}. */
export interface LogThrottleOptions {
  /** Shortest time between two lines of one key. @default 10000 */
  intervalMs?: number;
  /**
   * Keys tracked at once; past it the least recently written is forgotten, with its count of
   * held-back lines (the callers' counters keep the totals). @default 100
   */
  maxKeys?: number;
  /** Clock, epoch ms. @default Date.now */
  now?: () => number;
}

/**
 * Rate-limits a log line that can repeat per message (an unknown status, a retry, a failing
 * handler): at most one line per key and interval, each written line carrying how many of its
 * kind were held back since the one before.
 */
export interface LogThrottle {
  /**
   * Whether a line of `key` may be written now: the number of lines of `key` held back since the
   * last one written (0 for none) when it may, `undefined` when this one is held back (and
   * counted for the next). Costs a map lookup; call it only where the line would be written.
   */
  take(key: string): number | undefined;
}

/** The defaults of {@link LogThrottleOptions}. */
export const LOG_THROTTLE_DEFAULTS = { intervalMs: 10_000, maxKeys: 100 } as const;

interface KeyState {
  writtenAtMs: number;
  held: number;
}

/**
 * Creates a {@link LogThrottle}. Use it where a log line sits on a per-message path:
 *
 * ```ts
 * const suppressed = throttle.take('unknown-status');
 * if (suppressed !== undefined) log.info({ status, suppressed }, 'massive status');
 * ```
 */
export function createLogThrottle(options: LogThrottleOptions = {}): LogThrottle {
  const intervalMs = options.intervalMs ?? LOG_THROTTLE_DEFAULTS.intervalMs;
  const maxKeys = options.maxKeys ?? LOG_THROTTLE_DEFAULTS.maxKeys;
  const now = options.now ?? Date.now;
  if (!Number.isFinite(intervalMs) || intervalMs < 0)
    throw new RangeError('logThrottle.intervalMs must be ≥ 0');
  if (!Number.isSafeInteger(maxKeys) || maxKeys < 1)
    throw new RangeError('logThrottle.maxKeys must be an integer ≥ 1');
  const keys = new Map<string, KeyState>();
  return {
    take(key) {
      const at = now();
      const state = keys.get(key);
      if (state !== undefined && at - state.writtenAtMs < intervalMs) {
        state.held++;
        return undefined;
      }
      const held = state?.held ?? 0;
      // Re-inserted, so the map's first key is always the one written longest ago.
      keys.delete(key);
      keys.set(key, { writtenAtMs: at, held: 0 });
      if (keys.size > maxKeys) keys.delete(keys.keys().next().value!);
      return held;
    },
  };
}
